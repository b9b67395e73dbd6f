"""Settling matched reads: the protocol's auto-consensus rule and consensus geometry.

Per cluster a verdict: accept (enough readers, attributes agree), drop (too few
readers) or dispute, with every reason that sent it to arbitration: existence
(marked by n of N), a different finding type at the same place, an attribute
disagreement (categorical values differ, ordinal scores further apart than the
tolerance), a size difference over the tolerance. Case-level labels that differ
between reads are disputes too.

Consensus geometry: the members' shapes rasterised on the series grid and
combined by majority vote or STAPLE (SimpleITK), traced back into per-slice
contours, with the centre and long-axis diameter measured on the result.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qc.matching import Cluster, Grid, Mark, similarity
from qc.raster import SparseMask, has_area, rasterise, trace_outline

ACCEPT, DROP, DISPUTE = "accept", "drop", "dispute"
METHODS = ("majority", "staple")
SIZE_KEYS = ("long_axis_mm", "diameter_mm", "long_axis")


@dataclass(frozen=True)
class ConsensusRule:
    """The protocol's settling rule in plain numbers.

    `accept_min_readers` None: nothing is auto-accepted. `attribute_kinds` maps
    finding type -> attribute key -> schema kind (enum, ordinal, number,
    boolean, text); `case_field_kinds` the same for case-level fields.
    `size_tolerance_mm` None: sizes are not compared.
    """

    readers: int
    accept_min_readers: int | None = None
    drop_below_readers: int = 0
    same_type: bool = True
    ordinal_tolerance: int = 1
    size_tolerance_mm: float | None = None
    attribute_kinds: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    case_field_kinds: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterVerdict:
    cluster: Cluster
    verdict: str
    reasons: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": [dict(r) for r in self.reasons]}


def mark_size_mm(mark: Mark, grid: Grid | None) -> float | None:
    """A mark's long axis: the reader's measurement if given, else the drawn shape's."""
    for key in SIZE_KEYS:
        value = mark.attributes.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    if grid is None or not mark.shapes:
        return None
    row_mm, col_mm = grid.pixel_spacing
    best = 0.0
    for _, pts in mark.shapes:
        p = np.asarray(pts, dtype=float) * (col_mm, row_mm)
        if len(p) < 2:
            continue
        if mark.kind in ("box", "ellipse"):
            w, h = np.abs(p[1] - p[0])
            best = max(best, float(max(w, h)) if mark.kind == "ellipse" else math.hypot(w, h))
        else:
            d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
            best = max(best, float(d.max()))
    return best or None


def _attribute_reasons(marks: Sequence[Mark], kinds: Mapping[str, str], rule: ConsensusRule):
    reasons = []
    for key in sorted(kinds):
        kind = kinds[key]
        values = [m.attributes.get(key) for m in marks]
        if kind == "text":
            continue
        if kind == "ordinal":
            scores = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
            missing = len(scores) != len(values) and any(v is not None for v in values)
            if scores and (max(scores) - min(scores) > rule.ordinal_tolerance or missing):
                reasons.append({"code": "attribute", "key": key, "kind": kind, "values": values})
        elif kind in ("enum", "boolean"):
            if not rule.same_type:
                continue
            labels = {repr(sorted(v) if isinstance(v, list) else v) for v in values}
            if len(labels) > 1:
                reasons.append({"code": "attribute", "key": key, "kind": kind, "values": values})
    return reasons


def evaluate(
    clusters: Sequence[Cluster], rule: ConsensusRule, grid: Grid | None = None
) -> list[ClusterVerdict]:
    """The protocol's verdict for every cluster of one case."""
    verdicts = []
    for c in clusters:
        n = len(set(c.readers))
        if n < rule.drop_below_readers:
            verdicts.append(
                ClusterVerdict(
                    c,
                    DROP,
                    ({"code": "too_few_readers", "readers": n, "needed": rule.drop_below_readers},),
                )
            )
            continue
        reasons: list[dict[str, Any]] = []
        k = rule.accept_min_readers
        if k is None or n < k:
            reasons.append({"code": "existence", "readers": n, "of": rule.readers, "needed": k})
        others = _other_types_here(c, clusters, grid)
        if others:
            reasons.append({"code": "type", "other_types": others})
        reasons.extend(
            _attribute_reasons(c.marks, rule.attribute_kinds.get(c.finding_type, {}), rule)
        )
        if rule.size_tolerance_mm is not None and len(c.marks) > 1:
            sizes = [s for s in (mark_size_mm(m, grid) for m in c.marks) if s is not None]
            if len(sizes) > 1 and max(sizes) - min(sizes) > rule.size_tolerance_mm:
                reasons.append(
                    {
                        "code": "size",
                        "spread_mm": round(max(sizes) - min(sizes), 2),
                        "tolerance_mm": rule.size_tolerance_mm,
                    }
                )
        verdicts.append(ClusterVerdict(c, DISPUTE if reasons else ACCEPT, tuple(reasons)))
    return verdicts


def _other_types_here(c: Cluster, clusters: Sequence[Cluster], grid: Grid | None) -> list[str]:
    """Finding types of other clusters that the match rule would pair with this one."""
    found = set()
    for other in clusters:
        if other.finding_type == c.finding_type or other.finding_type in found:
            continue
        if any(similarity(a, b, c.rule, c.threshold, grid) for a in c.marks for b in other.marks):
            found.add(other.finding_type)
    return sorted(found)


def label_disagreements(
    labels: Mapping[str, Mapping[str, Any]], kinds: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Case-level fields on which the reads do not all give the same answer
    (text fields excepted). `labels` maps read -> field -> value."""
    disputes = []
    for key in sorted(kinds):
        if kinds[key] == "text":
            continue
        values = {read: answers.get(key) for read, answers in labels.items()}
        distinct = {repr(sorted(v) if isinstance(v, list) else v) for v in values.values()}
        if len(distinct) > 1:
            disputes.append({"code": "case_label", "key": key, "values": values})
    return disputes


def merge_attributes(marks: Sequence[Mark], kinds: Mapping[str, str]) -> dict[str, Any]:
    """Consensus attributes: the most common category, the median ordinal, the
    mean number; text from the first mark that has it."""
    merged: dict[str, Any] = {}
    keys = sorted(set(kinds) | {k for m in marks for k in m.attributes})
    for key in keys:
        values = [m.attributes[key] for m in marks if m.attributes.get(key) is not None]
        if not values:
            continue
        kind = kinds.get(key)
        if kind == "ordinal":
            merged[key] = int(round(statistics.median(values)))
        elif kind == "number":
            merged[key] = round(float(statistics.fmean(values)), 3)
        elif kind == "text":
            merged[key] = values[0]
        else:
            counts = Counter(repr(v) for v in values)
            top = counts.most_common(1)[0][0]
            merged[key] = next(v for v in values if repr(v) == top)
    return merged


@dataclass(frozen=True)
class ConsensusGeometry:
    kind: str
    shapes: tuple[tuple[int, tuple[tuple[float, float], ...]], ...]
    centre_mm: tuple[float, float, float] | None
    diameter_mm: float | None
    method: str
    members: int
    voxels: int = 0

    def as_geometry(self) -> dict[str, Any]:
        """The Finding geometry JSON, plus how it was made."""
        return {
            "kind": self.kind,
            "shapes": [
                {"slice_index": s, "points": [[round(c, 3), round(r, 3)] for c, r in pts]}
                for s, pts in self.shapes
            ],
            "centre_mm": list(self.centre_mm) if self.centre_mm else None,
            "consensus": {"method": self.method, "members": self.members, "voxels": self.voxels},
        }


def _stack(masks: Sequence[SparseMask]) -> tuple[tuple[int, int, int], np.ndarray]:
    lo = tuple(min(m.origin[k] for m in masks) for k in range(3))
    hi = tuple(max(m.stop[k] for m in masks) for k in range(3))
    shape = tuple(h - lo_ for lo_, h in zip(lo, hi, strict=True))
    return lo, np.stack([m.placed(lo, shape) for m in masks])


def combine_masks(masks: Sequence[SparseMask], method: str = "majority") -> SparseMask:
    """Majority vote (more than half of the masks) or STAPLE (SimpleITK, p >= 0.5)."""
    if method not in METHODS:
        raise ValueError(f"unknown consensus method {method!r}; known: {', '.join(METHODS)}")
    origin, stack = _stack(masks)
    if method == "majority":
        data = stack.sum(axis=0) * 2 > len(masks)
    else:
        import SimpleITK as sitk

        # STAPLE needs background around the masks to estimate specificity:
        # a bounding box that is all foreground would give it nothing to weigh.
        pad = ((1, 1), (2, 2), (2, 2))
        images = [sitk.GetImageFromArray(np.pad(m, pad).astype(np.uint8)) for m in stack]
        probability = sitk.GetArrayFromImage(sitk.STAPLE(images, 1.0))
        data = (probability >= 0.5)[1:-1, 2:-2, 2:-2]
    return SparseMask(origin, data)


def consensus_geometry(
    marks: Sequence[Mark], grid: Grid | None, method: str = "majority"
) -> ConsensusGeometry:
    """One geometry for a cluster. Marks with area are combined voxel-wise and traced
    back to per-slice contours; otherwise (points, lines, no grid) the mean centre."""
    areal = [m for m in marks if any(has_area(m.kind, pts) for _, pts in m.shapes)]
    if grid is not None and areal:
        masks = [rasterise(m.kind, m.shapes) for m in areal]
        combined = combine_masks(masks, method) if len(masks) > 1 else masks[0]
        used = method if len(masks) > 1 else "single"
        if not combined.data.any():  # e.g. two readers who do not overlap at all
            combined = SparseMask(*_stack(masks))
            combined = SparseMask(combined.origin, combined.data.any(axis=0))
            used = f"union ({method} empty)"
        return _from_mask(combined, grid, used, len(marks))
    located = [m.centre_mm for m in marks if m.centre_mm is not None]
    centre = tuple(float(v) for v in np.mean(located, axis=0)) if located else None
    shapes: tuple = ()
    if centre is not None and grid is not None:
        s, col, row = grid.to_index(*centre)
        shapes = ((int(round(s)), ((round(col, 3), round(row, 3)),)),)
    sizes = [s for s in (mark_size_mm(m, grid) for m in marks) if s is not None]
    return ConsensusGeometry(
        kind="point",
        shapes=shapes,
        centre_mm=centre,
        diameter_mm=float(statistics.median(sizes)) if sizes else None,
        method="mean_centre",
        members=len(marks),
    )


def _from_mask(mask: SparseMask, grid: Grid, method: str, members: int) -> ConsensusGeometry:
    s0, r0, c0 = mask.origin
    shapes = []
    best_area, diameter = -1, None
    row_mm, col_mm = grid.pixel_spacing
    for k in range(mask.data.shape[0]):
        plane = mask.data[k]
        if not plane.any():
            continue
        outline = trace_outline(plane)
        pts = tuple((c + c0, r + r0) for c, r in outline)
        shapes.append((s0 + k, pts))
        area = int(plane.sum())
        if area > best_area:
            best_area = area
            p = np.asarray(outline, dtype=float) * (col_mm, row_mm)
            d = np.sqrt(((p[:, None, :] - p[None, :, :]) ** 2).sum(-1))
            diameter = float(d.max())
    idx = np.argwhere(mask.data).mean(axis=0)
    centre = grid.to_patient(idx[0] + s0, idx[2] + c0, idx[1] + r0)
    return ConsensusGeometry(
        kind="contour",
        shapes=tuple(shapes),
        centre_mm=centre,
        diameter_mm=round(diameter, 3) if diameter is not None else None,
        method=method,
        members=members,
        voxels=mask.voxels,
    )
