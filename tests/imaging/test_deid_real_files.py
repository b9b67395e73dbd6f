"""Every real DICOM file shipped in pydicom and pydicom-data goes through the engine."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from annotation_server.imaging.deid import (
    Deidentifier,
    DeidError,
    DeidOptions,
    DeidResult,
    is_valid_uid,
    keeps_uid,
    resolve_action,
)
from annotation_server.imaging.deid.profile import is_curve_or_overlay
from annotation_server.imaging.ingest.prepare import prepare
from tests.real_dicom import real_dicom_files

SECRET = b"real-files-secret"
OTHER_SECRET = b"another-project"
OPTIONS = DeidOptions()
FILES = real_dicom_files()
# Actions whose output may equal the input: keep, clean (descriptors), keep-and-recurse.
MAY_SURVIVE = {"K", "C", "R"}


@cache
def _read(path: Path) -> Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path)
            for _ in _walk(ds):  # force every raw element to convert now
                pass
        except Exception:
            return None
    return ds


@cache
def _deid(path: Path, secret: bytes = SECRET) -> DeidResult:
    ds = _read(path)
    assert ds is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Deidentifier(secret, OPTIONS).apply(ds)


def _walk(ds: Dataset, path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], DataElement]]:
    for elem in ds:
        yield path + (elem.tag,), elem
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                yield from _walk(item, path + (elem.tag, i))


def _lookup(ds: Dataset, path: tuple[int, ...]) -> DataElement | None:
    current: Dataset = ds
    *parents, last = path
    for i in range(0, len(parents), 2):
        tag, index = parents[i], parents[i + 1]
        if tag not in current or index >= len(current[tag].value or []):
            return None
        current = current[tag].value[index]
    return current.get(last)


def _values(elem: DataElement) -> list[str]:
    value = elem.value
    if isinstance(value, bytes):
        return [value.decode("latin-1").strip("\x00 ")]
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [str(v).strip() for v in value]
    return [str(value).strip()]


def _non_empty(elem: DataElement | None) -> bool:
    return elem is not None and not elem.is_empty and any(_values(elem))


def test_there_are_real_files() -> None:
    assert len(FILES) > 200


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_real_file(path: Path) -> None:
    original = _read(path)
    if original is None:
        # pydicom reads the header but not every element: the engine must refuse clearly.
        raw = pydicom.dcmread(path, stop_before_pixels=True)
        with pytest.raises(DeidError):
            Deidentifier(SECRET).apply(raw)
        return
    before = pydicom.dcmread(path)
    result = _deid(path)
    out = result.dataset
    assert out is not original
    assert out.PatientIdentityRemoved == "YES"

    for where, elem in _walk(original):
        tag = (elem.tag.group, elem.tag.element)
        new = _lookup(out, where)
        if elem.tag.is_private or is_curve_or_overlay(tag[0]):
            assert new is None, f"{elem.tag} survived"
            continue
        if tag[0] == 0x0002 or not _non_empty(elem):
            continue
        keyword = keyword_for_tag(elem.tag) or ""
        if elem.VR == "UI":
            for old_uid, new_uid in zip(_values(elem), _values(new) if new else [], strict=False):
                if keeps_uid(keyword, old_uid):
                    assert new_uid == old_uid
                else:
                    assert is_valid_uid(new_uid) and new_uid != old_uid, (keyword, old_uid)
            continue
        action = resolve_action(tag, elem.VR, OPTIONS)
        if action in MAY_SURVIVE:
            continue
        assert not _non_empty(new) or _values(new) != _values(elem), (
            f"{keyword or elem.tag} ({action}) kept its value {elem.value!r}"
        )

    # File Meta: new SOP Instance UID everywhere, no AE titles.
    meta = getattr(out, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta and "SOPInstanceUID" in out:
        assert meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    if meta is not None:
        assert "SourceApplicationEntityTitle" not in meta
    # Kept attributes (statistics) are unchanged.
    for keyword in ("PatientAge", "PatientSex"):
        if keyword in original and original[keyword].value:
            assert out[keyword].value == original[keyword].value
    # The input was not modified.
    assert original == before or _same_dump(original, before)


def _same_dump(a: Dataset, b: Dataset) -> bool:
    return str(a) == str(b)


def test_same_uid_maps_to_same_new_uid_across_files() -> None:
    seen: dict[str, str] = {}
    studies: dict[str, set[str]] = {}
    for path in FILES:
        if _read(path) is None:
            continue
        result = _deid(path)
        for m in result.mappings:
            if m.kind.endswith("_uid"):
                assert seen.setdefault(m.original, m.replacement) == m.replacement
        original = _read(path)
        if "StudyInstanceUID" in original and original.StudyInstanceUID:
            studies.setdefault(original.StudyInstanceUID, set()).add(
                result.dataset.StudyInstanceUID
            )
    shared = [uid for uid, new in studies.items() if len(new) == 1]
    assert all(len(new) == 1 for new in studies.values())
    assert len(seen) > 200 and shared


def test_files_sharing_a_study_get_one_new_study_uid() -> None:
    by_study: dict[str, list[Path]] = {}
    for path in FILES:
        ds = _read(path)
        if ds is not None and ds.get("StudyInstanceUID"):
            by_study.setdefault(str(ds.StudyInstanceUID), []).append(path)
    groups = [paths for paths in by_study.values() if len(paths) > 1]
    assert groups, "expected some real files to share a study"
    for paths in groups:
        new = {str(_deid(p).dataset.StudyInstanceUID) for p in paths}
        assert len(new) == 1


def test_other_secret_gives_other_uids() -> None:
    checked = 0
    for path in FILES[::10]:
        if _read(path) is None or "SOPInstanceUID" not in _read(path):
            continue
        a = _deid(path).dataset
        b = _deid(path, OTHER_SECRET).dataset
        assert a.SOPInstanceUID != b.SOPInstanceUID
        if a.get("StudyInstanceUID"):
            assert a.StudyInstanceUID != b.StudyInstanceUID
        checked += 1
    assert checked > 10


def _elements(ds: Dataset) -> list[tuple]:
    """Every element (nested ones too) as comparable plain values."""
    out = []
    for where, elem in _walk(ds):
        value = len(elem.value or []) if elem.VR == "SQ" else elem.value
        if isinstance(value, pydicom.multival.MultiValue):
            value = list(value)
        out.append((where, elem.VR, value))
    return out


def _read_back(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_ingest_path_equals_fully_decoded_path(path: Path) -> None:
    """Ingest de-identifies the freshly parsed file, whose kept elements stay raw
    bytes, and encodes it with its own writer. The result must be the same, element
    for element, as de-identifying a fully decoded copy and writing it with
    pydicom's save_as, which test_real_file checks attribute by attribute."""
    decoded = _read(path)
    if decoded is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare(Deidentifier(SECRET, OPTIONS), path.name, path.read_bytes())
    if prepared.rejected:  # refused before de-identification (no pixels, no UIDs...)
        return
    reference = _deid(path)
    buffer = io.BytesIO()
    reference.dataset.save_as(buffer, enforce_file_format=True)
    expected = _read_back(buffer.getvalue())
    got = _read_back(prepared.data)
    assert _elements(got) == _elements(expected)
    assert _elements(got.file_meta) == _elements(expected.file_meta)
    assert got.preamble == b"\0" * 128  # nothing of the original preamble is kept
    assert sorted((m.kind, m.original, m.replacement) for m in prepared.mappings) == sorted(
        (m.kind, m.original, m.replacement) for m in reference.mappings
    )
    assert prepared.quarantine_reason == reference.quarantine_reason


def test_remembered_outcomes_change_nothing() -> None:
    """One Deidentifier remembers what each raw element became and replays it for
    the next file with the same bytes in the same context (a series' slices): every
    file, twice through one shared engine, must come out byte for byte as a fresh
    engine makes it."""
    shared = Deidentifier(SECRET, OPTIONS)
    replayed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):
            for path in FILES:
                data = path.read_bytes()
                fresh = prepare(Deidentifier(SECRET, OPTIONS), path.name, data)
                again = prepare(shared, path.name, data)
                assert again.data == fresh.data, path.name
                assert again.reason == fresh.reason
                assert again.quarantine_reason == fresh.quarantine_reason
                assert [(m.kind, m.original, m.replacement) for m in again.mappings] == [
                    (m.kind, m.original, m.replacement) for m in fresh.mappings
                ]
                replayed += not fresh.rejected
    assert replayed > 300 and sum(len(memo) for memo in shared._memos.values()) > 100
