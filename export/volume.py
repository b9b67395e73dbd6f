"""Series geometry and voxels for writers that need them (SEG, nnU-Net, COCO).

A series' slices are its instances sorted by `slice_index`; finding geometry
refers to slices by that index. Pixel data is read from the de-identified files
with pydicom, rescaled to modality values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pydicom

from export.model import FindingRecord, SeriesRecord
from qc.raster import SparseMask, rasterise


@dataclass(frozen=True)
class Grid:
    """Where the voxels of a series are in patient space (LPS, mm)."""

    shape: tuple[int, int, int]  # slices, rows, columns
    origin: np.ndarray  # position of voxel (0, 0, 0)
    row_dir: np.ndarray  # direction of increasing column index (DICOM's first cosine)
    col_dir: np.ndarray  # direction of increasing row index
    normal: np.ndarray
    spacing: tuple[float, float, float]  # slice, row, column spacing in mm

    def to_mm(self, slice_index: float, row: float, col: float) -> tuple[float, float, float]:
        p = (
            self.origin
            + col * self.spacing[2] * self.row_dir
            + row * self.spacing[1] * self.col_dir
            + slice_index * self.spacing[0] * self.normal
        )
        return (float(p[0]), float(p[1]), float(p[2]))


def grid(series: SeriesRecord) -> Grid:
    instances = sorted(series.instances, key=lambda i: i.slice_index)
    orientation = np.asarray(series.orientation or (1, 0, 0, 0, 1, 0), dtype=float)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    positions = [np.asarray(i.position, dtype=float) for i in instances if i.position is not None]
    origin = positions[0] if positions else np.zeros(3)
    if len(positions) >= 2:
        steps = [
            float(np.dot(b - a, normal)) for a, b in zip(positions, positions[1:], strict=False)
        ]
        slice_spacing = float(np.median(steps)) or (series.slice_thickness_mm or 1.0)
    else:
        slice_spacing = series.slice_thickness_mm or 1.0
    if slice_spacing < 0:  # slices stored head-first: keep a right-handed frame
        normal, slice_spacing = -normal, -slice_spacing
    pr, pc = series.pixel_spacing_mm or (1.0, 1.0)
    return Grid(
        shape=(len(instances), int(series.rows or 0), int(series.columns or 0)),
        origin=origin,
        row_dir=row_dir,
        col_dir=col_dir,
        normal=normal,
        spacing=(slice_spacing, float(pr), float(pc)),
    )


def finding_mask(finding: FindingRecord | dict) -> SparseMask | None:
    geometry = finding.geometry if isinstance(finding, FindingRecord) else finding
    if not geometry:
        return None
    shapes = [(s["slice_index"], s.get("points") or []) for s in geometry.get("shapes", [])]
    return rasterise(geometry.get("kind", ""), shapes)


def dense(mask: SparseMask, shape: tuple[int, int, int]) -> np.ndarray:
    """The sparse mask in a full series-sized volume, clipped to the volume."""
    out = np.zeros(shape, dtype=bool)
    lo = [max(0, o) for o in mask.origin]
    hi = [min(n, o + d) for n, o, d in zip(shape, mask.origin, mask.data.shape, strict=True)]
    if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
        return out
    src = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, mask.origin, strict=True))
    out[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = mask.data[src]
    return out


def read_volume(series: SeriesRecord) -> np.ndarray:
    """int16 modality values, (slices, rows, columns)."""
    planes = []
    for inst in sorted(series.instances, key=lambda i: i.slice_index):
        ds = pydicom.dcmread(inst.path)
        plane = ds.pixel_array.astype(np.float32)
        plane = plane * float(getattr(ds, "RescaleSlope", 1) or 1) + float(
            getattr(ds, "RescaleIntercept", 0) or 0
        )
        planes.append(np.clip(np.rint(plane), -32768, 32767).astype(np.int16))
    return np.stack(planes) if planes else np.zeros((0, 0, 0), dtype=np.int16)


def read_datasets(series: SeriesRecord) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(i.path) for i in sorted(series.instances, key=lambda i: i.slice_index)]
