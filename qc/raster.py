"""Per-slice shapes on a series' voxel grid: rasterising, containment, tracing.

Shapes are given per slice index as points [col, row] in that slice's pixel
coordinates, where (0, 0) is the centre of the first pixel (DICOM's
ImagePositionPatient convention). A pixel belongs to a shape when its centre
lies inside. Masks are kept sparse: a bounding box (slice, row, col offsets)
and a boolean array over it, so overlaps of small findings on big series stay
cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AREA_KINDS = frozenset({"box", "ellipse", "polygon", "contour"})

Points = Sequence[Sequence[float]]


def has_area(kind: str, points: Points) -> bool:
    """True for kinds that enclose a region (a point or a line contains nothing)."""
    if kind not in AREA_KINDS:
        return False
    if kind in ("box", "ellipse"):
        return len(points) >= 2 and points[0][0] != points[1][0] and points[0][1] != points[1][1]
    return len(points) >= 3


def _in_polygon(cols: np.ndarray, rows: np.ndarray, points: Points) -> np.ndarray:
    """Even-odd rule, vectorised over the query points."""
    poly = np.asarray(points, dtype=float)
    inside = np.zeros(np.broadcast(cols, rows).shape, dtype=bool)
    x0, y0 = poly[-1]
    for x1, y1 in poly:
        crosses = (y1 > rows) != (y0 > rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (x0 - x1) * (rows - y1) / (y0 - y1) + x1
        inside ^= crosses & (cols < x_at)
        x0, y0 = x1, y1
    return inside


def contains(kind: str, points: Points, col: float, row: float) -> bool:
    """Whether the point (col, row) lies inside one slice's shape."""
    if not has_area(kind, points):
        return False
    return bool(_inside(kind, points, np.asarray(col, float), np.asarray(row, float)))


def _inside(kind: str, points: Points, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    if kind in ("box", "ellipse"):
        (c0, r0), (c1, r1) = points[0], points[1]
        lo_c, hi_c = min(c0, c1), max(c0, c1)
        lo_r, hi_r = min(r0, r1), max(r0, r1)
        if kind == "box":
            return (cols >= lo_c) & (cols <= hi_c) & (rows >= lo_r) & (rows <= hi_r)
        cc, cr = (lo_c + hi_c) / 2, (lo_r + hi_r) / 2
        a, b = (hi_c - lo_c) / 2, (hi_r - lo_r) / 2
        return ((cols - cc) / a) ** 2 + ((rows - cr) / b) ** 2 <= 1.0
    return _in_polygon(cols, rows, points)


@dataclass(frozen=True)
class SparseMask:
    """A boolean voxel mask stored over its bounding box. `origin` is (slice, row, col)."""

    origin: tuple[int, int, int]
    data: np.ndarray

    @property
    def voxels(self) -> int:
        return int(self.data.sum())

    @property
    def stop(self) -> tuple[int, int, int]:
        return tuple(o + s for o, s in zip(self.origin, self.data.shape, strict=True))

    def intersection(self, other: SparseMask) -> int:
        lo = [max(a, b) for a, b in zip(self.origin, other.origin, strict=True)]
        hi = [min(a, b) for a, b in zip(self.stop, other.stop, strict=True)]
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            return 0
        mine = self.data[
            tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, self.origin, strict=True))
        ]
        theirs = other.data[
            tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, other.origin, strict=True))
        ]
        return int(np.count_nonzero(mine & theirs))

    def placed(self, origin: tuple[int, int, int], shape: tuple[int, int, int]) -> np.ndarray:
        """This mask copied into a larger box starting at `origin` (which must contain it)."""
        out = np.zeros(shape, dtype=bool)
        at = tuple(
            slice(a - o, a - o + n)
            for a, o, n in zip(self.origin, origin, self.data.shape, strict=True)
        )
        out[at] = self.data
        return out


def rasterise(kind: str, shapes: Sequence[tuple[int, Points]]) -> SparseMask | None:
    """The voxels whose centres lie inside the shapes; None if nothing has area.

    A shape too small to cover any pixel centre still claims the pixel under its
    centroid, so a drawn 2-pixel ellipse is never an empty mask.
    """
    drawn = [(int(s), pts) for s, pts in shapes if has_area(kind, pts)]
    if not drawn:
        return None
    slices = [s for s, _ in drawn]
    every = np.asarray([p for _, pts in drawn for p in pts], dtype=float)
    c_lo, r_lo = np.floor(every.min(axis=0)).astype(int)
    c_hi, r_hi = np.ceil(every.max(axis=0)).astype(int)
    s_lo = min(slices)
    data = np.zeros((max(slices) - s_lo + 1, r_hi - r_lo + 1, c_hi - c_lo + 1), dtype=bool)
    rows, cols = np.mgrid[r_lo : r_hi + 1, c_lo : c_hi + 1]
    for s, pts in drawn:
        plane = _inside(kind, pts, cols.astype(float), rows.astype(float))
        if not plane.any():
            centre = np.asarray(pts, dtype=float).mean(axis=0)
            plane[int(round(centre[1])) - r_lo, int(round(centre[0])) - c_lo] = True
        data[s - s_lo] |= plane
    return SparseMask((s_lo, int(r_lo), int(c_lo)), data)


def overlap(a: SparseMask | None, b: SparseMask | None, measure: str) -> float:
    """Dice or IoU of two voxel masks (0 when either is empty)."""
    if a is None or b is None:
        return 0.0
    inter = a.intersection(b)
    if measure == "dice":
        return 2.0 * inter / (a.voxels + b.voxels)
    if measure == "iou":
        return inter / (a.voxels + b.voxels - inter)
    raise ValueError(f"unknown overlap measure {measure!r}")


def trace_outline(plane: np.ndarray) -> list[tuple[float, float]]:
    """The outer boundary of the largest connected region of a 2D mask, as a closed
    polygon [(col, row), ...] running along pixel edges (half-integer coordinates).

    Rasterising that polygon by pixel centres gives the region back exactly
    (holes filled), so a consensus mask survives the trip to contours.
    """
    from scipy import ndimage

    labels, count = ndimage.label(plane)
    if count == 0:
        return []
    sizes = ndimage.sum_labels(plane, labels, index=range(1, count + 1))
    region = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)) + 1)
    padded = np.pad(region, 1)
    # Directed boundary edges with the region on the left, between pixel corners.
    # Corner (r, c) of the padded array is the top-left corner of pixel (r, c).
    nxt: dict[tuple[int, int], list[tuple[int, int]]] = {}
    rr, cc = np.nonzero(padded)
    for r, c in zip(rr.tolist(), cc.tolist(), strict=True):
        if not padded[r - 1, c]:  # top edge, walk right-to-left
            nxt.setdefault((r, c + 1), []).append((r, c))
        if not padded[r + 1, c]:  # bottom edge, left-to-right
            nxt.setdefault((r + 1, c), []).append((r + 1, c + 1))
        if not padded[r, c - 1]:  # left edge, top-to-bottom
            nxt.setdefault((r, c), []).append((r + 1, c))
        if not padded[r, c + 1]:  # right edge, bottom-to-top
            nxt.setdefault((r + 1, c + 1), []).append((r, c + 1))
    start = min(nxt)
    loop = [start]
    here = start
    prev_dir = None
    while True:
        options = nxt[here]
        if len(options) == 1:
            step = options.pop()
        else:  # a pinch point: keep turning the same way to stay on the outer loop
            step = _pick_turn(here, prev_dir, options)
            options.remove(step)
        prev_dir = (step[0] - here[0], step[1] - here[1])
        here = step
        if here == start:
            break
        loop.append(here)
    # Drop collinear corners; shift back from padded, to pixel-edge coordinates.
    keep = []
    n = len(loop)
    for i, p in enumerate(loop):
        a, b = loop[i - 1], loop[(i + 1) % n]
        if (p[0] - a[0]) * (b[1] - p[1]) != (p[1] - a[1]) * (b[0] - p[0]):
            keep.append(p)
    return [(c - 1 - 0.5, r - 1 - 0.5) for r, c in keep]


def _pick_turn(here, prev_dir, options):
    # Prefer a left turn relative to the direction we came from (region on the left).
    def turn(option):
        d = (option[0] - here[0], option[1] - here[1])
        if prev_dir is None:
            return 0
        cross = prev_dir[0] * d[1] - prev_dir[1] * d[0]
        return -cross

    return min(options, key=turn)
