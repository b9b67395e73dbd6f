"""A series as the rules see it: headers plus lazily loaded, rescaled pixels."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

PixelLoader = Callable[[], "list[np.ndarray] | None"]


@dataclass
class Frame:
    """Geometry of one image plane (one single-frame file or one frame of a multi-frame)."""

    index: int  # position in the series' frame list (file order, then frame order)
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    thickness: float | None
    instance_number: int | None


@dataclass
class SeriesInput:
    headers: list[Dataset]
    pixels: PixelLoader = field(default=lambda: None)
    source: str = ""
    notes: list[str] = field(default_factory=list)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def modality(self) -> str:
        return str(getattr(self.headers[0], "Modality", "") or "").upper() if self.headers else ""

    @property
    def series_uid(self) -> str:
        return str(getattr(self.headers[0], "SeriesInstanceUID", "") or "") if self.headers else ""

    def frames(self) -> list[Frame]:
        if "frames" not in self._cache:
            self._cache["frames"] = [f for ds in self.headers for f in _frames_of(ds)]
            for i, f in enumerate(self._cache["frames"]):
                f.index = i
        return self._cache["frames"]

    def images(self) -> list[np.ndarray] | None:
        """Pixels once per series (cached): rescaled float32 2-D frames, or None."""
        if "images" not in self._cache:
            try:
                imgs = self.pixels()
            except Exception as exc:  # undecodable pixel data: pixel rules say n/a
                self.notes.append(f"pixel data not decodable: {exc.__class__.__name__}: {exc}")
                imgs = None
            self._cache["images"] = imgs or None
        return self._cache["images"]

    @classmethod
    def from_datasets(cls, datasets: Sequence[Dataset], source: str = "") -> SeriesInput:
        """Wrap in-memory datasets (with pixel data) as one series, sorted by position."""
        dss = sort_datasets(list(datasets))
        return cls(headers=dss, pixels=lambda: _frames_pixels(dss), source=source)


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _vec(v: Any, n: int) -> tuple[float, ...] | None:
    if v is None:
        return None
    try:
        vals = [float(x) for x in v]
    except (TypeError, ValueError):
        return None
    if len(vals) != n or not all(np.isfinite(vals)):
        return None
    return tuple(vals)


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _first_item(ds: Dataset, seq: str, inner: str) -> Dataset | None:
    s = getattr(ds, seq, None)
    if not s:
        return None
    item = s[0]
    inner_seq = getattr(item, inner, None)
    return inner_seq[0] if inner_seq else None


def _frames_of(ds: Dataset) -> list[Frame]:
    """One Frame per image plane of ``ds`` (enhanced multi-frame: from functional groups)."""
    n = _int(getattr(ds, "NumberOfFrames", 1)) or 1
    inst = _int(getattr(ds, "InstanceNumber", None))
    pffg = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if n > 1 and pffg is not None:
        shared = getattr(ds, "SharedFunctionalGroupsSequence", None)
        sh = shared[0] if shared else Dataset()
        out = []
        for k in range(n):
            item = pffg[k] if k < len(pffg) else Dataset()

            def get(seq: str, attr: str, item: Dataset = item) -> Any:
                for src in (item, sh):
                    s = getattr(src, seq, None)
                    if s and attr in s[0]:
                        return getattr(s[0], attr)
                return None

            out.append(
                Frame(
                    k,
                    _vec(get("PlanePositionSequence", "ImagePositionPatient"), 3),
                    _vec(get("PlaneOrientationSequence", "ImageOrientationPatient"), 6),
                    _f(get("PixelMeasuresSequence", "SliceThickness")),
                    inst,
                )
            )
        return out
    pos = _vec(getattr(ds, "ImagePositionPatient", None), 3)
    ori = _vec(getattr(ds, "ImageOrientationPatient", None), 6)
    thick = _f(getattr(ds, "SliceThickness", None))
    if n > 1:
        # classic multi-frame (e.g. NM, US): frames share one geometry
        return [Frame(k, pos if k == 0 else None, ori, thick, inst) for k in range(n)]
    return [Frame(0, pos, ori, thick, inst)]


def slice_normal(orientation: Sequence[float]) -> np.ndarray | None:
    row, col = np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float)
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    return n / norm if norm > 1e-6 else None


def sort_datasets(dss: list[Dataset]) -> list[Dataset]:
    """Sort by position along the (first) slice normal, then InstanceNumber."""
    ori = None
    for ds in dss:
        ori = _vec(getattr(ds, "ImageOrientationPatient", None), 6)
        if ori:
            break
    n = slice_normal(ori) if ori else None

    def key(ds: Dataset) -> tuple[float, float]:
        pos = _vec(getattr(ds, "ImagePositionPatient", None), 3)
        inst = _int(getattr(ds, "InstanceNumber", None))
        inst_f = float(inst) if inst is not None else 0.0
        if n is not None and pos is not None:
            return (float(np.dot(n, pos)), inst_f)
        return (inst_f, 0.0)

    return sorted(dss, key=key)


def rescale(ds: Dataset, arr: np.ndarray) -> list[np.ndarray]:
    """Stored values -> float32 frames with RescaleSlope/Intercept applied (2-D each)."""
    slope = _f(getattr(ds, "RescaleSlope", None))
    icpt = _f(getattr(ds, "RescaleIntercept", None))
    if slope is None and icpt is None:
        item = _first_item(ds, "SharedFunctionalGroupsSequence", "PixelValueTransformationSequence")
        if item is not None:
            slope = _f(getattr(item, "RescaleSlope", None))
            icpt = _f(getattr(item, "RescaleIntercept", None))
    slope = 1.0 if slope is None else slope
    icpt = 0.0 if icpt is None else icpt
    a = np.asarray(arr)
    n = _int(getattr(ds, "NumberOfFrames", 1)) or 1
    spp = _int(getattr(ds, "SamplesPerPixel", 1)) or 1
    if spp > 1:  # colour: use luminance-ish mean of the samples
        a = a.mean(axis=-1)
    if a.ndim == 2:
        frames = [a]
    elif a.ndim == 3 and (n > 1 or spp == 1):
        frames = list(a)
    else:
        frames = [a.reshape(a.shape[-2], a.shape[-1])] if a.ndim >= 2 else []
    return [(f.astype(np.float32) * np.float32(slope) + np.float32(icpt)) for f in frames]


def _frames_pixels(dss: Sequence[Dataset]) -> list[np.ndarray] | None:
    out: list[np.ndarray] = []
    for ds in dss:
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            return None
        out.extend(rescale(ds, ds.pixel_array))
    return out


def _read_pixels(paths: Sequence[str]) -> list[np.ndarray] | None:
    out: list[np.ndarray] = []
    for p in paths:
        ds = pydicom.dcmread(p)
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            return None
        out.extend(rescale(ds, ds.pixel_array))
    return out


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand folders (recursively) into their files; files are kept as given."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(q for q in path.rglob("*") if q.is_file()))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return out


def load_series(
    paths: Iterable[str | os.PathLike[str]], skipped: list[str] | None = None
) -> list[SeriesInput]:
    """Read headers of every DICOM file under ``paths`` and group them by SeriesInstanceUID.

    Files that are not DICOM (truth.json, DICOMDIR without images, ...) are skipped and
    listed in ``skipped`` when given. Pixels are read only when a pixel rule asks.
    """
    groups: dict[str, list[tuple[Dataset, str]]] = {}
    for path in iter_files(paths):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            if skipped is not None:
                skipped.append(f"{path}: not DICOM")
            continue
        if "SOPClassUID" not in ds and "Modality" not in ds and "Rows" not in ds:
            if skipped is not None:
                skipped.append(f"{path}: no image")
            continue
        if getattr(ds, "DirectoryRecordSequence", None) is not None:
            if skipped is not None:
                skipped.append(f"{path}: DICOMDIR")
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "") or f"(no series uid) {path}")
        groups.setdefault(uid, []).append((ds, str(path)))
    out = []
    for items in groups.values():
        order = {id(ds): p for ds, p in items}
        dss = sort_datasets([ds for ds, _ in items])
        files = [order[id(ds)] for ds in dss]
        src = os.path.commonpath(files) if len(files) > 1 else files[0]
        out.append(
            SeriesInput(headers=dss, pixels=lambda files=files: _read_pixels(files), source=src)
        )
    return out
