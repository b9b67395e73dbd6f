"""Matching findings across reads: the protocol's match rule, clustering, pairing.

Plain data in, plain data out (no Django). A `Mark` is one finding of one read;
`cluster` groups marks of the same finding type from different reads the way
pylidc clusters LIDC annotations (single linkage under the match rule, then the
rule is tightened inside any group that holds two marks of one read until none
does); `match_pairs` pairs a read one-to-one against a reference (optimal
assignment) for qualification and product scoring. The rule and threshold are
recorded on every result: changing the rule alone moves recall a lot.

Rules (ReadingProtocol.MatchRule):
- centre_distance: centres at most `threshold` mm apart (3D, patient space);
- centre_in_contour: either centre, mapped to its nearest slice, lies inside
  the other mark's shape on that slice (a point or a line contains nothing);
- distance_or_inside: either of the two above;
- overlap_dice / overlap_iou: Dice / IoU of the marks' voxels on the series
  grid at least `threshold` (0-1);
- pylidc: pylidc's `Scan.cluster_annotations` (metric "min"), so LIDC-derived
  data clusters the way that community clusters it. Two marks are adjacent when
  the minimum distance between their outline points is at most a tolerance; the
  tolerance starts at the series' slice thickness (`Grid.slice_thickness`, else
  the slice spacing, else `threshold`) and, while any group of a finding type
  holds two marks of one read, is multiplied by 0.9 and the whole type is
  regrouped (pylidc tightens globally, not per group), down to 0.1. As in pylidc,
  distances are measured between (column, row, slice index) voxel indices, not
  mm, and marks of one read are adjacent too (they can chain a group together).
  Two departures, both stated: pylidc tightens while a group holds more than
  four annotations (LIDC's four readers), we while a group holds two marks of
  one read (the same thing for four readers, and right for any other number);
  and where pylidc gives up at the floor and leaves such a group to be split by
  hand, we split it by removing its longest links until no read appears twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from qc.raster import SparseMask, contains, overlap, rasterise

RULES = (
    "centre_distance",
    "centre_in_contour",
    "distance_or_inside",
    "overlap_dice",
    "overlap_iou",
    "pylidc",
)
DISTANCE_RULES = frozenset({"centre_distance", "centre_in_contour", "distance_or_inside"})
OVERLAP_RULES = frozenset({"overlap_dice", "overlap_iou"})
GRID_RULES = frozenset(
    {"centre_in_contour", "distance_or_inside", "overlap_dice", "overlap_iou", "pylidc"}
)
PYLIDC = "pylidc"
PYLIDC_FACTOR = 0.9  # pylidc's `factor`
PYLIDC_MIN_TOL = 0.1  # pylidc's `min_tol`

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Grid:
    """A series' voxel geometry from plain numbers (DICOM Image Plane module).

    `positions[i]` is ImagePositionPatient of slice index i (mm), `row_cosine`
    and `column_cosine` are the two halves of ImageOrientationPatient (the
    direction of increasing column, then of increasing row), `pixel_spacing`
    is PixelSpacing (between rows, between columns) in mm. `patient_space` is
    False for images without position (e.g. radiographs): pixel units then.
    """

    positions: tuple[Vec3, ...]
    row_cosine: Vec3 = (1.0, 0.0, 0.0)
    column_cosine: Vec3 = (0.0, 1.0, 0.0)
    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    rows: int | None = None
    columns: int | None = None
    patient_space: bool = True
    slice_thickness: float | None = None

    @classmethod
    def regular(
        cls,
        slices: int,
        *,
        origin: Vec3 = (0.0, 0.0, 0.0),
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        rows: int | None = None,
        columns: int | None = None,
        slice_thickness: float | None = None,
    ) -> Grid:
        """An axial grid: `spacing` is (slice, row, column) spacing in mm."""
        x, y, z = origin
        return cls(
            positions=tuple((x, y, z + i * spacing[0]) for i in range(slices)),
            pixel_spacing=(spacing[1], spacing[2]),
            rows=rows,
            columns=columns,
            slice_thickness=slice_thickness,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "positions": [list(p) for p in self.positions],
            "row_cosine": list(self.row_cosine),
            "column_cosine": list(self.column_cosine),
            "pixel_spacing": list(self.pixel_spacing),
            "rows": self.rows,
            "columns": self.columns,
            "patient_space": self.patient_space,
            "slice_thickness": self.slice_thickness,
        }

    @cached_property
    def _frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        pos = np.asarray(self.positions, dtype=float).reshape(-1, 3)
        rc = np.asarray(self.row_cosine, dtype=float)
        cc = np.asarray(self.column_cosine, dtype=float)
        normal = np.cross(rc, cc)
        along = pos @ normal
        return pos, rc, cc, normal, along

    @property
    def slice_spacing(self) -> float:
        along = self._frame[4]
        if len(along) < 2:
            return 1.0
        return float(np.median(np.abs(np.diff(along))))

    def _origin(self, slice_index: float) -> np.ndarray:
        pos = self._frame[0]
        n = len(pos)
        if n == 1:
            return pos[0]
        i = min(max(int(math.floor(slice_index)), 0), n - 2)
        t = slice_index - i
        return pos[i] + (pos[i + 1] - pos[i]) * t

    def to_patient(self, slice_index: float, col: float, row: float) -> Vec3:
        """Pixel (col, row) of slice `slice_index` (may be fractional) to patient mm."""
        _, rc, cc, _, _ = self._frame
        p = self._origin(slice_index) + rc * col * self.pixel_spacing[1]
        p = p + cc * row * self.pixel_spacing[0]
        return (float(p[0]), float(p[1]), float(p[2]))

    def to_index(self, x: float, y: float, z: float) -> tuple[float, float, float]:
        """Patient mm to (fractional slice index, col, row)."""
        pos, rc, cc, normal, along = self._frame
        p = np.asarray((x, y, z), dtype=float)
        if len(pos) == 1:
            s = 0.0
        else:
            h = float(p @ normal)
            order = np.argsort(along)
            lo, hi = along[order[0]], along[order[-1]]
            if lo <= h <= hi:
                s = float(np.interp(h, along[order], order.astype(float)))
            else:  # outside the stack: extrapolate with the mean step
                step = (along[-1] - along[0]) / (len(along) - 1)
                s = float((h - along[0]) / step) if step else 0.0
        d = p - self._origin(s)
        col = float(d @ rc) / self.pixel_spacing[1]
        row = float(d @ cc) / self.pixel_spacing[0]
        return (s, col, row)


@dataclass(frozen=True)
class Mark:
    """One finding of one read, in plain numbers.

    `reader` names the read it comes from (one read contributes at most one mark
    to a cluster). `shapes` holds per slice index the points [col, row] of that
    slice (empty for pure points). `centre_mm` may be None only when nothing
    locates the mark; such a mark matches nothing by distance.
    """

    id: str
    reader: str
    finding_type: str
    centre_mm: Vec3 | None
    kind: str = "point"
    shapes: tuple[tuple[int, tuple[tuple[float, float], ...]], ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def shape_on(self, slice_index: int) -> tuple[tuple[float, float], ...] | None:
        for s, pts in self.shapes:
            if s == slice_index:
                return pts
        return None


@dataclass(frozen=True)
class Cluster:
    """Marks of one finding type, at most one per read, that the rule groups together.

    `threshold` is the protocol's; `threshold_used` the one that produced this
    cluster after tightening (equal unless `tightened`). When tightened, matches
    inside the cluster are strictly stronger than `threshold_used`: centre
    distance < threshold_used mm for the distance and inside rules, overlap >
    threshold_used for the overlap rules (`tightened_on` names which).
    """

    marks: tuple[Mark, ...]
    finding_type: str
    rule: str
    threshold: float
    threshold_used: float
    tightened: bool = False
    tightened_on: str = ""

    @property
    def readers(self) -> tuple[str, ...]:
        return tuple(m.reader for m in self.marks)

    @property
    def centre_mm(self) -> Vec3 | None:
        located = [m.centre_mm for m in self.marks if m.centre_mm is not None]
        if not located:
            return None
        c = np.mean(np.asarray(located, dtype=float), axis=0)
        return (float(c[0]), float(c[1]), float(c[2]))

    @property
    def key(self) -> str:
        """A stable name: the sorted ids of its marks."""
        return "|".join(sorted(m.id for m in self.marks))


@dataclass(frozen=True)
class Matching:
    """A one-to-one pairing of candidate marks against reference marks."""

    pairs: tuple[tuple[Mark, Mark], ...]
    missed: tuple[Mark, ...]
    false_positives: tuple[Mark, ...]
    rule: str
    threshold: float


def distance_mm(a: Mark, b: Mark) -> float:
    if a.centre_mm is None or b.centre_mm is None:
        return math.inf
    return math.dist(a.centre_mm, b.centre_mm)


def centre_inside(a: Mark, b: Mark, grid: Grid) -> bool:
    """a's centre, mapped to its nearest slice, lies inside b's shape on that slice."""
    if a.centre_mm is None:
        return False
    s, col, row = grid.to_index(*a.centre_mm)
    pts = b.shape_on(int(round(s)))
    return pts is not None and contains(b.kind, pts, col, row)


def _outline(kind: str, pts: tuple[tuple[float, float], ...]) -> list[tuple[float, float]]:
    """The points that draw a shape: a box's four corners, 32 points round an
    ellipse (given by its bounding box), any other kind's own points."""
    if kind == "box" and len(pts) == 2:
        (c0, r0), (c1, r1) = pts
        return [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]
    if kind == "ellipse" and len(pts) == 2:
        (c0, r0), (c1, r1) = pts
        cc, rc, a, b = (c0 + c1) / 2, (r0 + r1) / 2, abs(c1 - c0) / 2, abs(r1 - r0) / 2
        return [
            (cc + a * math.cos(t), rc + b * math.sin(t))
            for t in np.linspace(0.0, 2 * math.pi, 32, endpoint=False)
        ]
    return list(pts)


def contour_points(m: Mark, grid: Grid | None) -> np.ndarray | None:
    """A mark's outline points as (column, row, slice index) voxel indices, the
    points pylidc's `Annotation.contours_matrix` holds (in (row, column, slice)
    order there; distances are the same). A mark without shapes (a point) is its
    centre, mapped to the nearest slice as pylidc maps a contour to its slice."""
    points = [(c, r, float(s)) for s, shape in m.shapes for c, r in _outline(m.kind, shape)]
    if not points and m.centre_mm is not None and grid is not None:
        s, c, r = grid.to_index(*m.centre_mm)
        points = [(c, r, float(round(s)))]
    return np.asarray(points, dtype=float) if points else None


def min_contour_distance(a: Mark, b: Mark, grid: Grid | None) -> float:
    """pylidc's "min" metric: the least distance between the two marks' outline
    points, in voxel indices (inf when either mark has no location)."""
    pa, pb = contour_points(a, grid), contour_points(b, grid)
    if pa is None or pb is None:
        return math.inf
    from scipy.spatial.distance import cdist

    return float(cdist(pa, pb).min())


def pylidc_start_tolerance(grid: Grid | None, threshold: float) -> float:
    """Where the pylidc rule's tolerance starts: the series' slice thickness as
    pylidc does, else its slice spacing, else `threshold`."""
    if grid is not None:
        if grid.slice_thickness is not None and grid.slice_thickness > 0:
            return float(grid.slice_thickness)
        if len(grid.positions) > 1 and grid.slice_spacing > 0:
            return grid.slice_spacing
    return float(threshold)


class _Geometry:
    """Per-call cache of rasterised marks (each mark is rasterised once)."""

    def __init__(self, grid: Grid | None):
        self.grid = grid
        self._masks: dict[int, SparseMask | None] = {}

    def mask(self, m: Mark) -> SparseMask | None:
        key = id(m)
        if key not in self._masks:
            self._masks[key] = rasterise(m.kind, m.shapes)
        return self._masks[key]


def _check(rule: str, threshold: float, grid: Grid | None) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown match rule {rule!r}; known: {', '.join(RULES)}")
    if rule in GRID_RULES and grid is None:
        raise ValueError(f"the {rule} rule needs the series grid")
    if rule in OVERLAP_RULES and not 0 < threshold <= 1:
        raise ValueError("an overlap threshold lies in (0, 1]")
    if rule == "centre_distance" and threshold <= 0:
        raise ValueError("a distance threshold is positive (mm)")
    if rule == PYLIDC and pylidc_start_tolerance(grid, threshold) <= 0:
        raise ValueError("the pylidc rule needs a slice thickness or a positive threshold")


def _strength(a: Mark, b: Mark, rule: str, threshold: float, geo: _Geometry) -> float | None:
    """None if the rule does not match a and b, else how strongly (higher is stronger):
    minus the centre distance for the distance/inside rules, the overlap otherwise."""
    if rule in OVERLAP_RULES:
        value = overlap(geo.mask(a), geo.mask(b), "dice" if rule == "overlap_dice" else "iou")
        return value if value >= threshold else None
    if rule == PYLIDC:
        d = min_contour_distance(a, b, geo.grid)
        return -d if d <= pylidc_start_tolerance(geo.grid, threshold) else None
    d = distance_mm(a, b)
    if rule in ("centre_distance", "distance_or_inside") and d <= threshold:
        return -d
    inside_rule = rule in ("centre_in_contour", "distance_or_inside")
    if inside_rule and (centre_inside(a, b, geo.grid) or centre_inside(b, a, geo.grid)):
        return -d if math.isfinite(d) else -1e12
    return None


def similarity(a: Mark, b: Mark, rule: str, threshold: float, grid: Grid | None = None) -> bool:
    """Whether the rule matches two marks (type and reader are not checked here)."""
    _check(rule, threshold, grid)
    return _strength(a, b, rule, threshold, _Geometry(grid)) is not None


def _components(n: int, edges: list[tuple[float, int, int]]) -> list[list[int]]:
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for _, i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _conflicted(members: list[int], marks: Sequence[Mark]) -> bool:
    readers = [marks[i].reader for i in members]
    return len(set(readers)) != len(readers)


def cluster(
    marks: Sequence[Mark], rule: str, threshold: float, grid: Grid | None = None
) -> list[Cluster]:
    """Group marks of the same finding type from different reads.

    Marks are linked when the rule matches them (never two marks of one read);
    linked groups are clusters. A group that still holds two marks of one read
    (through a chain) is split by tightening the rule inside it: its weakest
    links are removed until every part is free of such conflicts. Clusters come
    back sorted by type, then position, so results are reproducible.
    """
    _check(rule, threshold, grid)
    geo = _Geometry(grid)
    out: list[Cluster] = []
    by_type: dict[str, list[Mark]] = {}
    for m in marks:
        by_type.setdefault(m.finding_type, []).append(m)
    for finding_type in sorted(by_type):
        group = sorted(by_type[finding_type], key=lambda m: (m.reader, m.id))
        if rule == PYLIDC:
            start = pylidc_start_tolerance(grid, threshold)
            for members, used, tightened in _pylidc_groups(group, grid, start):
                out.append(
                    Cluster(
                        marks=tuple(group[i] for i in members),
                        finding_type=finding_type,
                        rule=rule,
                        threshold=start,
                        threshold_used=used,
                        tightened=tightened,
                        tightened_on="min_contour_distance_voxels" if tightened else "",
                    )
                )
            continue
        edges = []
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                if group[i].reader == group[j].reader:
                    continue
                s = _strength(group[i], group[j], rule, threshold, geo)
                if s is not None:
                    edges.append((s, i, j))
        for members, used, tightened in _split(group, edges, float(threshold), rule):
            out.append(
                Cluster(
                    marks=tuple(group[i] for i in members),
                    finding_type=finding_type,
                    rule=rule,
                    threshold=float(threshold),
                    threshold_used=used,
                    tightened=tightened,
                    tightened_on=(
                        ("overlap" if rule in OVERLAP_RULES else "centre_distance_mm")
                        if tightened
                        else ""
                    ),
                )
            )
    out.sort(key=lambda c: (c.finding_type, c.centre_mm or (math.inf,) * 3, c.key))
    return out


def _pylidc_groups(
    marks: Sequence[Mark], grid: Grid | None, start: float
) -> list[tuple[list[int], float, bool]]:
    """pylidc's clustering of one finding type's marks (see the module doc).

    Returns (member indices, tolerance used, tightened) per group; a group is
    "tightened" when the tolerance it came from was lowered and it is not a
    group the starting tolerance already formed."""
    n = len(marks)
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            dist[i, j] = dist[j, i] = min_contour_distance(marks[i], marks[j], grid)

    def groups(tol: float) -> list[list[int]]:
        edges = [(0.0, i, j) for i in range(n) for j in range(i + 1, n) if dist[i, j] <= tol]
        return _components(n, edges)

    tol = start
    parts = groups(tol)
    while any(_conflicted(p, marks) for p in parts):
        if tol * PYLIDC_FACTOR < PYLIDC_MIN_TOL:
            break  # pylidc stops here and leaves the rest to be grouped by hand
        tol *= PYLIDC_FACTOR
        parts = groups(tol)
    first = {frozenset(p) for p in groups(start)}
    result = []
    for members in parts:
        if not _conflicted(members, marks):
            result.append((sorted(members), tol, frozenset(members) not in first))
            continue
        # At the floor: drop the longest links between different reads until no
        # read appears twice (one read cannot contribute two marks to a finding).
        inside = sorted(members)
        edges = [
            (-dist[i, j], i, j)
            for k, i in enumerate(inside)
            for j in inside[k + 1 :]
            if marks[i].reader != marks[j].reader and dist[i, j] <= tol
        ]
        index = {m: k for k, m in enumerate(inside)}
        local = [(w, index[i], index[j]) for w, i, j in edges]
        for comp in _components(len(inside), local):
            sub = [inside[k] for k in comp]
            result.extend(_settle_component(sub, edges, marks, tol, PYLIDC, True))
    return result


def _split(
    marks: Sequence[Mark], edges: list[tuple[float, int, int]], threshold: float, rule: str
) -> list[tuple[list[int], float, bool]]:
    """Connected components; conflicted ones lose their weakest links, recursively."""
    result = []
    for members in _components(len(marks), edges):
        result.extend(_settle_component(members, edges, marks, threshold, rule, False))
    return result


def _settle_component(members, edges, marks, used, rule, tightened):
    if not _conflicted(members, marks):
        return [(sorted(members), used, tightened)]
    inside = set(members)
    mine = [e for e in edges if e[1] in inside and e[2] in inside]
    weakest = min(e[0] for e in mine)
    kept = [e for e in mine if e[0] > weakest]
    new_used = weakest if rule in OVERLAP_RULES else -weakest
    index = {m: k for k, m in enumerate(members)}
    local = [(s, index[i], index[j]) for s, i, j in kept]
    parts = []
    for comp in _components(len(members), local):
        sub = [members[k] for k in comp]
        parts.extend(_settle_component(sub, kept, marks, new_used, rule, True))
    return parts


def match_pairs(
    reference: Sequence[Mark],
    candidates: Sequence[Mark],
    rule: str,
    threshold: float,
    grid: Grid | None = None,
    *,
    same_type: bool = True,
) -> Matching:
    """Pair candidates with reference marks one-to-one under the rule.

    The assignment maximises the number of pairs first, then their strength
    (closest centres, or largest overlap), with scipy's linear_sum_assignment.
    """
    from scipy.optimize import linear_sum_assignment

    _check(rule, threshold, grid)
    geo = _Geometry(grid)
    n, m = len(reference), len(candidates)
    if n == 0 or m == 0:
        return Matching((), tuple(reference), tuple(candidates), rule, float(threshold))
    strength = np.full((n, m), np.nan)
    for i, r in enumerate(reference):
        for j, c in enumerate(candidates):
            if same_type and r.finding_type != c.finding_type:
                continue
            s = _strength(r, c, rule, threshold, geo)
            if s is not None:
                strength[i, j] = s
    feasible = ~np.isnan(strength)
    cost = np.full((n, m), float(n + m + 1) * 2.0)
    if feasible.any():
        vals = strength[feasible]
        span = float(vals.max() - vals.min()) or 1.0
        cost[feasible] = (vals.max() - vals) / span  # 0 (strongest) .. 1 (weakest)
    rows, cols = linear_sum_assignment(cost)
    pairs = [
        (reference[i], candidates[j]) for i, j in zip(rows, cols, strict=True) if feasible[i, j]
    ]
    paired_ref = {id(r) for r, _ in pairs}
    paired_cand = {id(c) for _, c in pairs}
    return Matching(
        pairs=tuple(pairs),
        missed=tuple(r for r in reference if id(r) not in paired_ref),
        false_positives=tuple(c for c in candidates if id(c) not in paired_cand),
        rule=rule,
        threshold=float(threshold),
    )
