"""Which product marks hit which reference lesions, under every match rule.

The geometry half of detection scoring (qc.evaluation.detection holds the
figures): product marks (LUNA16 rows) as arrays, and for each rule the
(lesion, mark) pairs that hit, excluded lesions included. Candidate pairs are
a mark and a lesion of the same scan; distance rules are vectorised over all
pairs, outline and overlap rules test only the pairs a bounding box or distance
bound lets through, with qc.matching / qc.raster doing the test.

- centre_within_radius (LUNA16): squared centre distance < (diameter / 2)^2, a
  lesion without a diameter taken as 10 mm;
- centre_distance: centres at most `threshold` mm apart (qc.matching's rule);
- centre_in_contour: qc.matching.centre_inside (the mark's centre, mapped to its
  nearest slice, inside the lesion's outline there);
- distance_or_inside: either of the two above;
- overlap_iou / overlap_dice: the mark taken as a sphere of the lesion's own
  diameter (the equivalent-volume diameter when it has none) about the mark,
  rasterised on the scan grid (voxel centres within the radius), against the
  lesion's outline rasterised (qc.raster), or a sphere of its diameter about its
  centre when it was drawn without an outline;
- pylidc: qc.matching.similarity with the pylidc rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qc.evaluation.truth import Lesion, Truth
from qc.matching import Grid, Mark, centre_inside, similarity
from qc.raster import SparseMask, rasterise

UNKNOWN_DIAMETER_MM = 10.0  # LUNA16's size for a finding without one

RADIUS = "centre_within_radius"
CONTOUR = "centre_in_contour"
IOU = "overlap_iou"
DICE = "overlap_dice"
DISTANCE = "centre_distance"
EITHER = "distance_or_inside"
PYLIDC = "pylidc"


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Marks:
    scan: np.ndarray  # int index into truth.scans
    xyz: np.ndarray  # (M, 3) mm
    prob: np.ndarray  # (M,)
    line: np.ndarray  # (M,) CSV line (or -1)


def marks_of(truth: Truth, detections: Sequence[Any]) -> Marks:
    index = {s.series_uid: i for i, s in enumerate(truth.scans)}
    kept = [d for d in detections if d.series_uid in index]
    scan = np.fromiter((index[d.series_uid] for d in kept), dtype=np.int64, count=len(kept))
    xyz = np.asarray([(d.x, d.y, d.z) for d in kept], dtype=float).reshape(-1, 3)
    prob = np.fromiter((d.probability for d in kept), dtype=float, count=len(kept))
    line = np.fromiter(
        (getattr(d, "line", None) or -1 for d in kept), dtype=np.int64, count=len(kept)
    )
    return Marks(scan, xyz, prob, line)


def to_index(grid: Grid, xyz: np.ndarray) -> np.ndarray:
    """Patient mm (n, 3) to (slice index, col, row), vectorised Grid.to_index."""
    pos = np.asarray(grid.positions, dtype=float).reshape(-1, 3)
    rc = np.asarray(grid.row_cosine, dtype=float)
    cc = np.asarray(grid.column_cosine, dtype=float)
    normal = np.cross(rc, cc)
    along = pos @ normal
    n = len(pos)
    h = xyz @ normal
    if n == 1:
        s = np.zeros(len(xyz))
    else:
        order = np.argsort(along)
        s = np.interp(h, along[order], order.astype(float))
        step = (along[-1] - along[0]) / (n - 1)
        outside = (h < along[order[0]]) | (h > along[order[-1]])
        if outside.any():
            s = np.where(outside, (h - along[0]) / step if step else 0.0, s)
    if n == 1:
        origin = np.broadcast_to(pos[0], xyz.shape)
    else:
        i = np.clip(np.floor(s).astype(np.int64), 0, n - 2)
        t = (s - i)[:, None]
        origin = pos[i] + (pos[i + 1] - pos[i]) * t
    d = xyz - origin
    col = (d @ rc) / grid.pixel_spacing[1]
    row = (d @ cc) / grid.pixel_spacing[0]
    return np.stack([s, col, row], axis=1)


def _lesion_mark(lesion: Lesion) -> Mark:
    geo = lesion.geometry or {}
    shapes = tuple(
        (int(sh["slice_index"]), tuple((float(p[0]), float(p[1])) for p in sh.get("points", ())))
        for sh in geo.get("shapes", ()) or ()
    )
    return Mark(
        id=lesion.lesion_id,
        reader="reference",
        finding_type=lesion.finding_type,
        centre_mm=lesion.centre_mm,
        kind=str(geo.get("kind") or "point"),
        shapes=shapes,
    )


def _product_mark(i: int, xyz: np.ndarray, finding_type: str) -> Mark:
    return Mark(
        id=f"m{i}",
        reader="product",
        finding_type=finding_type,
        centre_mm=(float(xyz[0]), float(xyz[1]), float(xyz[2])),
    )


# --------------------------------------------------------------------------- matching


class Matcher:
    """Which marks hit which lesions (all lesions, excluded ones too) under a rule."""

    def __init__(self, truth: Truth, marks: Marks):
        self.truth = truth
        self.marks = marks
        self.lesions = truth.lesions
        scan_index = {s.series_uid: i for i, s in enumerate(truth.scans)}
        self.l_scan = np.asarray(
            [scan_index.get(les.series_uid, -1) for les in self.lesions], dtype=np.int64
        )
        self.centre = np.asarray(
            [les.centre_mm if les.centre_mm is not None else (np.nan,) * 3 for les in self.lesions],
            dtype=float,
        ).reshape(-1, 3)
        self.diameter = np.asarray(
            [les.diameter_mm if les.diameter_mm is not None else np.nan for les in self.lesions],
            dtype=float,
        )
        # marks grouped by scan
        order = np.argsort(marks.scan, kind="stable")
        self.by_scan = order
        counts = np.bincount(marks.scan, minlength=len(truth.scans))
        self.start = np.concatenate([[0], np.cumsum(counts)])
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None
        self._index: np.ndarray | None = None
        self._masks: dict[int, SparseMask | None] = {}
        self._lesion_marks: dict[int, Mark] = {}

    # candidate pairs: every (lesion, mark of its scan)
    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pairs is None:
            ok = self.l_scan >= 0
            les = np.flatnonzero(ok)
            lo = self.start[self.l_scan[les]]
            n = self.start[self.l_scan[les] + 1] - lo
            p_les = np.repeat(les, n)
            first = np.repeat(np.cumsum(n) - n, n)
            p_mark = self.by_scan[np.repeat(lo, n) + np.arange(int(n.sum())) - first]
            self._pairs = (p_les, p_mark)
        return self._pairs

    def index_coords(self) -> np.ndarray:
        """(M, 3) slice index, col, row of every mark on its scan's grid."""
        if self._index is None:
            out = np.zeros((len(self.marks.prob), 3))
            for s, scan in enumerate(self.truth.scans):
                sel = self.by_scan[self.start[s] : self.start[s + 1]]
                if len(sel):
                    out[sel] = to_index(scan.grid, self.marks.xyz[sel])
            self._index = out
        return self._index

    def lesion_mark(self, j: int) -> Mark:
        if j not in self._lesion_marks:
            self._lesion_marks[j] = _lesion_mark(self.lesions[j])
        return self._lesion_marks[j]

    def hits(self, rule: str, threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
        """(lesion index, mark index) of every hit under the rule."""
        p_les, p_mark = self.pairs()
        if rule == RADIUS:
            d2 = ((self.marks.xyz[p_mark] - self.centre[p_les]) ** 2).sum(axis=1)
            diam = self.diameter[p_les]
            diam = np.where(np.isnan(diam), UNKNOWN_DIAMETER_MM, diam)
            hit = d2 < (diam / 2.0) ** 2  # NaN centre: False
        elif rule == DISTANCE:
            d = np.sqrt(((self.marks.xyz[p_mark] - self.centre[p_les]) ** 2).sum(axis=1))
            hit = d <= float(threshold or 0.0)
        elif rule == CONTOUR:
            hit = self._inside(p_les, p_mark)
        elif rule == EITHER:
            d = np.sqrt(((self.marks.xyz[p_mark] - self.centre[p_les]) ** 2).sum(axis=1))
            hit = (d <= float(threshold or 0.0)) | self._inside(p_les, p_mark)
        elif rule in (IOU, DICE):
            hit = self._overlap(p_les, p_mark, rule, float(threshold or 0.1))
        elif rule == PYLIDC:
            hit = self._pylidc(p_les, p_mark, float(threshold or 0.0))
        else:
            raise ValueError(f"unknown match rule {rule!r}")
        return p_les[hit], p_mark[hit]

    def _inside(self, p_les: np.ndarray, p_mark: np.ndarray) -> np.ndarray:
        """qc.matching.centre_inside on the pairs that can be inside (bounding box)."""
        hit = np.zeros(len(p_les), dtype=bool)
        idx = self.index_coords()
        boxes = np.full((len(self.lesions), 6), np.nan)  # s0, s1, c0, c1, r0, r1
        for j in range(len(self.lesions)):
            m = self.lesion_mark(j)
            pts = [(s, c, r) for s, shape in m.shapes for c, r in shape]
            if pts:
                a = np.asarray(pts, dtype=float)
                boxes[j] = (a[:, 0].min(), a[:, 0].max(), a[:, 1].min(), a[:, 1].max(),
                            a[:, 2].min(), a[:, 2].max())  # fmt: skip
        b = boxes[p_les]
        sl = np.round(idx[p_mark, 0])
        col, row = idx[p_mark, 1], idx[p_mark, 2]
        with np.errstate(invalid="ignore"):
            maybe = (
                (sl >= b[:, 0]) & (sl <= b[:, 1])
                & (col >= b[:, 2] - 1e-9) & (col <= b[:, 3] + 1e-9)
                & (row >= b[:, 4] - 1e-9) & (row <= b[:, 5] + 1e-9)
            )  # fmt: skip
        for k in np.flatnonzero(maybe):
            j, i = int(p_les[k]), int(p_mark[k])
            grid = self.truth.scans[self.l_scan[j]].grid
            mark = _product_mark(i, self.marks.xyz[i], self.lesions[j].finding_type)
            hit[k] = centre_inside(mark, self.lesion_mark(j), grid)
        return hit

    def lesion_mask(self, j: int) -> SparseMask | None:
        """The lesion's voxels: its outline rasterised, else a sphere of its diameter."""
        if j not in self._masks:
            m = self.lesion_mark(j)
            mask = rasterise(m.kind, m.shapes) if m.shapes else None
            if mask is None and not np.isnan(self.diameter[j]) and not np.isnan(self.centre[j, 0]):
                grid = self.truth.scans[self.l_scan[j]].grid
                mask = sphere_mask(grid, self.centre[j], self.diameter[j] / 2.0)
            self._masks[j] = mask
        return self._masks[j]

    def _overlap(self, p_les, p_mark, rule: str, threshold: float) -> np.ndarray:
        hit = np.zeros(len(p_les), dtype=bool)
        n = len(self.lesions)
        extent = np.full(n, np.nan)  # lesion centre to its farthest voxel, mm
        centre = np.full((n, 3), np.nan)
        radius = np.full(n, np.nan)  # the sphere a mark stands for
        for j in np.unique(p_les):
            mask = self.lesion_mask(int(j))
            if mask is None:
                continue
            grid = self.truth.scans[self.l_scan[j]].grid
            corners = _corners_mm(grid, mask)
            c = self.centre[j] if not np.isnan(self.centre[j, 0]) else corners.mean(axis=0)
            centre[j] = c
            extent[j] = float(np.sqrt(((corners - c) ** 2).sum(axis=1)).max())
            d = self.diameter[j]
            if np.isnan(d):  # the equivalent sphere of the lesion's volume
                volume = (
                    mask.voxels * grid.pixel_spacing[0] * grid.pixel_spacing[1] * _spacing(grid)
                )
                d = 2.0 * (3.0 * volume / (4.0 * math.pi)) ** (1.0 / 3.0)
            radius[j] = d / 2.0
        dist = np.sqrt(((self.marks.xyz[p_mark] - centre[p_les]) ** 2).sum(axis=1))
        with np.errstate(invalid="ignore"):
            maybe = dist <= radius[p_les] + extent[p_les]
        for k in np.flatnonzero(maybe):
            j, i = int(p_les[k]), int(p_mark[k])
            grid = self.truth.scans[self.l_scan[j]].grid
            lesion = self.lesion_mask(j)
            sphere = sphere_mask(grid, self.marks.xyz[i], radius[j])
            if lesion is None or sphere is None:
                continue
            inter = lesion.intersection(sphere)
            if rule == IOU:
                value = inter / (lesion.voxels + sphere.voxels - inter)
            else:
                value = 2.0 * inter / (lesion.voxels + sphere.voxels)
            hit[k] = value >= threshold
        return hit

    def _pylidc(self, p_les, p_mark, threshold: float) -> np.ndarray:
        """qc.matching's pylidc rule on the pairs near enough to possibly match."""
        hit = np.zeros(len(p_les), dtype=bool)
        idx = self.index_coords()
        for k in range(len(p_les)):
            j, i = int(p_les[k]), int(p_mark[k])
            scan = self.truth.scans[self.l_scan[j]]
            lm = self.lesion_mark(j)
            pts = [(c, r, float(s)) for s, shape in lm.shapes for c, r in shape]
            if pts:  # cheap reject: the index-space distance to the outline's box
                a = np.asarray(pts)
                q = np.asarray([idx[i, 1], idx[i, 2], float(np.round(idx[i, 0]))])
                gap = np.maximum(0.0, np.maximum(a.min(axis=0) - q, q - a.max(axis=0)))
                tol = scan.grid.slice_thickness or scan.grid.slice_spacing or threshold
                if float(np.sqrt((gap**2).sum())) > tol + 1e-9:
                    continue
            mark = _product_mark(i, self.marks.xyz[i], self.lesions[j].finding_type)
            hit[k] = similarity(lm, mark, PYLIDC, threshold or 1.0, scan.grid)
        return hit


def _spacing(grid: Grid) -> float:
    return grid.slice_spacing if len(grid.positions) > 1 else float(grid.slice_thickness or 1.0)


def _corners_mm(grid: Grid, mask: SparseMask) -> np.ndarray:
    """The centres of the 8 corner voxels of a mask's bounding box, in mm (every
    voxel centre of the mask lies in their convex hull)."""
    pos = np.asarray(grid.positions, dtype=float).reshape(-1, 3)
    rc = np.asarray(grid.row_cosine, dtype=float)
    cc = np.asarray(grid.column_cosine, dtype=float)
    lo, hi = mask.origin, [o + n - 1 for o, n in zip(mask.origin, mask.data.shape, strict=True)]
    out = []
    for s in (lo[0], hi[0]):
        for r in (lo[1], hi[1]):
            for c in (lo[2], hi[2]):
                p = pos[min(max(s, 0), len(pos) - 1)]
                out.append(p + rc * c * grid.pixel_spacing[1] + cc * r * grid.pixel_spacing[0])
    return np.asarray(out)


def sphere_mask(grid: Grid, centre: np.ndarray, radius: float) -> SparseMask | None:
    """The voxels of the scan grid whose centres lie within `radius` mm of `centre`."""
    if not radius > 0:
        return None
    pos = np.asarray(grid.positions, dtype=float).reshape(-1, 3)
    rc = np.asarray(grid.row_cosine, dtype=float)
    cc = np.asarray(grid.column_cosine, dtype=float)
    normal = np.cross(rc, cc)
    centre = np.asarray(centre, dtype=float)
    dz = (centre - pos) @ normal
    slices = np.flatnonzero(np.abs(dz) <= radius)
    if len(slices) == 0:
        return None
    dr, dc = grid.pixel_spacing
    d = centre[None, :] - pos[slices]
    c0, r0 = (d @ rc) / dc, (d @ cc) / dr
    cols = np.arange(math.floor(c0.min() - radius / dc) - 1, math.ceil(c0.max() + radius / dc) + 2)
    rows = np.arange(math.floor(r0.min() - radius / dr) - 1, math.ceil(r0.max() + radius / dr) + 2)
    if grid.columns:
        cols = cols[(cols >= 0) & (cols < grid.columns)]
    if grid.rows:
        rows = rows[(rows >= 0) & (rows < grid.rows)]
    if len(cols) == 0 or len(rows) == 0:
        return None
    # |voxel centre - sphere centre|^2, separable since the cosines are orthonormal
    vs = pos[slices] - centre  # (ns, 3)
    cc_term = cols * dc
    rr_term = rows * dr
    d2 = (
        (vs**2).sum(axis=1)[:, None, None]
        + (2.0 * (vs @ rc)[:, None] * cc_term[None, :] + cc_term[None, :] ** 2)[:, None, :]
        + (2.0 * (vs @ cc)[:, None] * rr_term[None, :] + rr_term[None, :] ** 2)[:, :, None]
    )
    inside = d2 <= radius**2
    if not inside.any():
        return None
    # SparseMask needs contiguous slices: fill the (rare) gaps with empty planes
    s_lo, s_hi = int(slices.min()), int(slices.max())
    data = np.zeros((s_hi - s_lo + 1, len(rows), len(cols)), dtype=bool)
    data[slices - s_lo] = inside
    return SparseMask((s_lo, int(rows[0]), int(cols[0])), data)
