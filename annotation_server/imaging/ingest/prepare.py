"""The CPU-bound half of ingest, per file: parse, validate, de-identify, encode.

No Django here (it runs in worker processes that never touch the database):
plain bytes in, plain results out. The pipeline stores, indexes and reports.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

import pydicom
from django.utils.translation import gettext as _
from pydicom.charset import default_encoding
from pydicom.dataset import FileMetaDataset, validate_file_meta
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from annotation_server.imaging.deid import Deidentifier, Mapping
from annotation_server.imaging.deid.elements import get_item, peek
from annotation_server.imaging.deid.pixel_text import find_text_in_dataset
from annotation_server.imaging.headers import IndexFacts, index_facts

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


class FileRejected(Exception):
    """A file cannot be imported; the message is the reason shown to the user."""


@dataclass
class Prepared:
    name: str
    reason: str = ""  # set when the file is rejected
    data: bytes = b""  # the de-identified file, encoded
    header: pydicom.Dataset | None = None  # its header, without pixel data
    facts: IndexFacts | None = None  # what the index records about it
    mappings: list[Mapping] = field(default_factory=list)
    quarantine_reason: str | None = None
    text_boxes: list[dict] | None = None  # burned-in text found in the pixels (suggested boxes)

    @property
    def rejected(self) -> bool:
        return bool(self.reason)


def parse(data: bytes) -> pydicom.Dataset:
    if not data:
        raise FileRejected(_("empty file (0 bytes)"))
    if data[128:132] != b"DICM" and data[:2] == b"\x02\x00":
        data = b"\0" * 128 + b"DICM" + data  # file meta without the preamble (STOW, some PACS)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        raise FileRejected(_("not a DICOM file (no DICM preamble, no DICOM header)")) from None
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        raise FileRejected(
            _("corrupt or truncated DICOM (%(error)s)") % {"error": f"{type(exc).__name__}: {exc}"}
        ) from None
    meta_class = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
    if meta_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise FileRejected(_("DICOMDIR (an index of other files, not an image): skipped"))
    missing = [k for k in REQUIRED_UIDS if not str(peek(ds, k, "") or "").strip()]
    if missing:
        raise FileRejected(
            _("missing required attribute(s): %(names)s") % {"names": ", ".join(missing)}
        )
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise FileRejected(
            _("no pixel data (%(modality)s object, not an image)")
            % {"modality": ds.get("Modality", "?")}
        )
    for attr in ("Rows", "Columns", "BitsAllocated"):
        if attr not in ds:
            raise FileRejected(_("image without %(attribute)s") % {"attribute": attr})
    check_pixels(ds)
    return ds


def check_pixels(ds: pydicom.Dataset) -> None:
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None:
        raise FileRejected(_("no transfer syntax in the file meta information"))
    ts = pydicom.uid.UID(str(ts))
    if ts.is_compressed:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            raise FileRejected(
                _("unsupported transfer syntax %(name)s (%(uid)s): cannot decode")
                % {"name": ts.name, "uid": str(ts)}
            )
        return
    frames = int(peek(ds, "NumberOfFrames", 1) or 1)
    samples = int(peek(ds, "SamplesPerPixel", 1) or 1)
    bits = int(peek(ds, "BitsAllocated"))
    expected = peek(ds, "Rows") * peek(ds, "Columns") * samples * frames * bits // 8
    have = len(peek(ds, "PixelData")) if "PixelData" in ds else expected
    if have < expected:
        raise FileRejected(
            _("truncated pixel data: %(have)s bytes, %(expected)s expected")
            % {"have": have, "expected": expected}
        )


def encode(ds: pydicom.Dataset) -> bytes:
    """The dataset as a DICOM file (preamble, file meta, body).

    Elements that de-identification left undecoded are copied byte for byte, the
    way pydicom itself writes them, without its per-element machinery; the rest
    go through pydicom's writer. Anything unusual (deflate, big endian, a change
    of encoding or character set) is written by pydicom's ``save_as`` as a whole.
    The 128-byte preamble is always zeros: the original's may carry anything.
    """
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:
        return _encode_pydicom(ds)
    ts = pydicom.uid.UID(str(ts))
    if (
        ts.is_private
        or not ts.is_transfer_syntax
        or not ts.is_little_endian
        or ts.is_deflated
        or ds.original_encoding != (ts.is_implicit_VR, True)
        or ds.original_character_set != ds._character_set
    ):
        return _encode_pydicom(ds)
    meta = FileMetaDataset(meta)  # never change the caller's file meta
    for meta_kw, ds_kw in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        value = peek(ds, ds_kw)
        if meta_kw not in meta or (value and value != meta[meta_kw].value):
            setattr(meta, meta_kw, value)
    head = _file_meta(meta)
    pixels = ds.get_item(0x7FE00010)
    if pixels is not None and (
        not pixels.is_raw or (pixels.length == 0xFFFFFFFF) != ts.is_compressed
    ):  # PS3.5 A.4: encapsulated pixel data has undefined length (as dcmwrite sets it)
        ds["PixelData"].is_undefined_length = ts.is_compressed
    parts = [head]
    _write_body(parts, ds, ts.is_implicit_VR)
    return b"".join(parts)  # the one copy of the pixel data


def _encode_pydicom(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    preamble = getattr(ds, "preamble", None)
    ds.preamble = None  # written as zeros: the original's may carry anything (TIFF headers...)
    try:
        ds.save_as(buffer, enforce_file_format=True)
    finally:
        ds.preamble = preamble
    return buffer.getvalue()


def _file_meta(meta: FileMetaDataset) -> bytes:
    """Preamble, "DICM" and pydicom's ``write_file_meta_info(enforce_standard=True)``
    of ``meta``, each element encoded once per process: every file of a batch
    repeats all of them but its SOP instance UID."""
    validate_file_meta(meta, enforce_standard=True)  # adds what the standard requires
    parts = []
    for tag in sorted(meta.keys()):
        if tag == 0x00020000:
            continue  # the group length, written last, first
        elem = meta.get_item(tag)
        value = elem.value
        key = None
        if isinstance(value, (str, bytes)):
            raw = (elem.is_implicit_VR, elem.is_little_endian) if elem.is_raw else None
            key = (tag, elem.VR, raw, value)
        encoded = _meta_memo.get(key) if key is not None else None
        if encoded is None:
            fp = DicomBytesIO()
            fp.is_implicit_VR, fp.is_little_endian = False, True
            write_data_element(fp, elem)
            encoded = fp.getvalue()
            if key is not None and tag != 0x00020003:  # instance UIDs never repeat
                if len(_meta_memo) >= 256:
                    _meta_memo.clear()
                _meta_memo[key] = encoded
        parts.append(encoded)
    length = sum(len(p) for p in parts)
    meta.FileMetaInformationGroupLength = length
    return b"".join([_PREAMBLE, _GROUP_LENGTH.pack(2, 0, b"UL", 4, length), *parts])


_PREAMBLE = b"\0" * 128 + b"DICM"
_GROUP_LENGTH = struct.Struct("<HH2sHL")
_meta_memo: dict[tuple, bytes] = {}

_HEADER_32 = struct.Struct("<HH2sHL")  # tag, VR, reserved, 4-byte length
_HEADER_16 = struct.Struct("<HH2sH")  # tag, VR, 2-byte length
_HEADER_IMPLICIT = struct.Struct("<HHL")


def _write_body(parts: list[bytes], ds: pydicom.Dataset, implicit: bool) -> None:
    """pydicom's write_dataset into ``parts``, with a fast path for raw elements of
    defined length (their bytes are appended as they are, not copied)."""
    charset = peek(ds, "SpecificCharacterSet", default_encoding)
    append = parts.append
    for tag in sorted(ds.keys()):
        if tag.element == 0 and tag.group > 6:
            continue  # retired group lengths are not written (PS3.5 7.2)
        elem = get_item(ds, tag)
        value = elem.value if elem.is_raw else None
        if value is not None and (
            elem.is_implicit_VR != implicit
            or not elem.is_little_endian
            or (elem.VR is None and not implicit)
        ):
            elem, value = ds[tag], None  # read in another encoding than it is written in
        if isinstance(value, bytes) and elem.length != 0xFFFFFFFF:
            vr = elem.VR
            length = len(value)
            if implicit:
                append(_HEADER_IMPLICIT.pack(tag.group, tag.element, length))
                append(value)
                continue
            if vr in EXPLICIT_VR_LENGTH_32:
                append(_HEADER_32.pack(tag.group, tag.element, vr.encode(), 0, length))
                append(value)
                continue
            if vr and length <= 0xFFFF:
                append(_HEADER_16.pack(tag.group, tag.element, vr.encode(), length))
                append(value)
                continue
        fp = DicomBytesIO()
        fp.is_implicit_VR, fp.is_little_endian = implicit, True
        write_data_element(fp, elem, charset)
        append(fp.getvalue())


def prepare(deid: Deidentifier, name: str, data: bytes, *, built_here: bool = False) -> Prepared:
    """Everything about one file that needs no database.

    ``built_here``: the file is a photograph this import converted (pixels only,
    its header written by us), so its SOP class alone is no reason to quarantine
    it when the pixels are read for burned-in text; with that detector off, the
    header rule still holds every photograph for review."""
    try:
        ds = parse(data)
        result = deid.apply(ds, in_place=True)
        clean = result.dataset
        quarantine_reason, text_boxes = result.quarantine_reason, None
        if built_here and deid.options.detect_pixel_text:
            quarantine_reason = None
        if quarantine_reason is None and deid.options.detect_pixel_text:
            found = find_text_in_dataset(clean)
            if found.has_text:
                quarantine_reason, text_boxes = found.reason(), found.suggested_boxes()
        encoded = encode(clean)
        facts = index_facts(clean)
    except FileRejected as exc:
        return Prepared(name, reason=str(exc))
    except (ValueError, TypeError, KeyError) as exc:
        return Prepared(
            name, reason=_("invalid attribute value in the file (%(error)s)") % {"error": exc}
        )
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in clean:
            delattr(clean, keyword)  # keep only the header in memory
    clean.buffer = None  # pydicom keeps the buffer it read: the whole original file
    return Prepared(
        name,
        data=encoded,
        header=clean,
        facts=facts,
        mappings=result.mappings,
        quarantine_reason=quarantine_reason,
        text_boxes=text_boxes,
    )
