"""Scoring a segmentation product per lesion: matching, Dice, HD95, ASSD, NSD.

Conventions (also written into every result's `conventions`):
- reference lesion masks are the reference geometry rasterised on the scan's
  grid (qc.raster: voxels whose centres lie inside the outline, as the
  package's reference SEG); predicted lesions are the 26-connected components
  of each submitted segment (qc.evaluation.submission);
- a prediction and a reference lesion on the same scan are candidates when
  their voxels overlap (IoU > 0), when the prediction's centroid voxel lies in
  the reference mask, or when the reference's centre (centre_mm, nearest
  voxel) lies in the prediction; each reference lesion is matched to at most
  one prediction and vice versa, maximising the summed IoU over candidate
  pairs (optimal assignment, scipy's linear_sum_assignment);
- per matched lesion: Dice, IoU, HD95 (the larger directed 95th percentile),
  ASSD and NSD at `tolerance_mm` between surface voxels in mm on the scan's
  anisotropic spacing (qc.agreement.shapes); a missed reference lesion has
  Dice 0 and NSD 0 and no distance;
- figures: Dice and NSD are the mean over all reference lesions (missed ones
  count 0); HD95 and ASSD the mean over matched lesions; lesion sensitivity is
  matched / reference lesions; false-positive lesions per scan are the
  predictions matched to nothing, per scan of the split;
- excluded reference lesions are not scored; a prediction left unmatched that
  is a candidate for an excluded lesion is ignored (neither a hit nor a false
  positive);
- a reference lesion without an outline (a point) is matched by its centre
  only; it counts for sensitivity but not for Dice, NSD or distances;
- bootstrap: 1000 (seeded) resamples of scans with replacement, percentile
  95%; figures that are ratios are recomputed as ratios of resampled sums;
- strata: scan strata (site, manufacturer, slice thickness) take the scans of
  a level; lesion strata (finding type, size band, reader agreement) the
  reference lesions of a level (false positives per scan are not given there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from qc.agreement import shapes
from qc.evaluation.classification import case_truth
from qc.evaluation.submission import SegLesion
from qc.evaluation.truth import LESION_STRATA, SCAN_STRATA, Lesion, Scan, Truth
from qc.raster import SparseMask, rasterise

FIGURES = (
    "dice",
    "hd95_mm",
    "assd_mm",
    "nsd",
    "lesion_sensitivity",
    "false_positive_lesions_per_scan",
)

CONVENTIONS = {
    "reference_masks": "reference outlines rasterised on the scan grid (voxel centres inside)",
    "predicted_lesions": "26-connected components of each submitted segment",
    "lesion_match": (
        "candidates: voxels overlap (IoU > 0), the prediction's centroid in the reference mask, "
        "or the reference centre in the prediction; one-to-one, maximising summed IoU"
    ),
    "surface_distances": (
        "between surface voxels (6-connected boundary) in mm on the scan's anisotropic "
        "spacing; HD95 the larger directed 95th percentile"
    ),
    "missed_lesions": "a missed reference lesion counts Dice 0 and NSD 0 and has no distance",
    "aggregation": (
        "Dice and NSD: mean over reference lesions; HD95 and ASSD: mean over matched lesions; "
        "lesion sensitivity: matched / reference lesions; false positives: unmatched "
        "predictions per scan"
    ),
    "excluded_findings": (
        "excluded reference lesions are not scored; an unmatched prediction touching one is "
        "ignored (neither hit nor false positive)"
    ),
    "unoutlined_reference": (
        "a reference lesion without an outline is matched by its centre; it counts for "
        "sensitivity only"
    ),
    "strata": (
        "scan strata: scans of the level; lesion strata: reference lesions of the level, no "
        "false-positive rate"
    ),
}


@dataclass
class _Row:
    """One scored reference lesion."""

    scan: int
    lesion: Lesion
    outlined: bool
    matched: bool = False
    by: str | None = None
    measures: dict | None = None


def reference_mask(lesion: Lesion) -> SparseMask | None:
    """The reference outline on the scan grid (as export.volume.finding_mask)."""
    geometry = lesion.geometry
    if not geometry:
        return None
    shapes_ = [(s["slice_index"], s.get("points") or []) for s in geometry.get("shapes", [])]
    return rasterise(geometry.get("kind", ""), shapes_)


def _clip(mask: SparseMask | None, shape: tuple[int, int, int]) -> SparseMask | None:
    """The mask cut to the volume (None when nothing is left)."""
    if mask is None:
        return None
    lo = [max(0, o) for o in mask.origin]
    hi = [min(n, o + d) for n, o, d in zip(shape, mask.origin, mask.data.shape, strict=True)]
    if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
        return None
    data = mask.data[
        tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, mask.origin, strict=True))
    ]
    if not data.any():
        return None
    return SparseMask(tuple(lo), data)  # type: ignore[arg-type]


def _holds(mask: SparseMask | None, voxel: tuple[int, int, int] | None) -> bool:
    if mask is None or voxel is None:
        return False
    at = [v - o for v, o in zip(voxel, mask.origin, strict=True)]
    if any(a < 0 or a >= n for a, n in zip(at, mask.data.shape, strict=True)):
        return False
    return bool(mask.data[tuple(at)])


def _centroid(mask: SparseMask) -> tuple[int, int, int]:
    c = np.argwhere(mask.data).mean(axis=0) + np.asarray(mask.origin)
    return tuple(int(v) for v in np.rint(c))  # type: ignore[return-value]


def _centre_voxel(scan: Scan, lesion: Lesion) -> tuple[int, int, int] | None:
    if lesion.centre_mm is None:
        return None
    s, col, row = scan.grid.to_index(*lesion.centre_mm)
    return (int(round(s)), int(round(row)), int(round(col)))


def spacing_of(scan: Scan) -> tuple[float, float, float]:
    """(slice, row, column) spacing in mm."""
    pr, pc = scan.grid.pixel_spacing
    return (float(scan.grid.slice_spacing), float(pr), float(pc))


def pair_measures(a: SparseMask, b: SparseMask, spacing, tolerance_mm: float) -> dict:
    """Dice, IoU, HD95, ASSD, NSD of two sparse masks (over their joint box)."""
    lo = tuple(min(x, y) for x, y in zip(a.origin, b.origin, strict=True))
    hi = tuple(max(x, y) for x, y in zip(a.stop, b.stop, strict=True))
    shape = tuple(h - lo_ for lo_, h in zip(lo, hi, strict=True))
    out = shapes.compare(a.placed(lo, shape), b.placed(lo, shape), spacing, tolerance_mm)
    return {
        "dice": out["dice"],
        "iou": out["iou"],
        "hd95_mm": out["hd95"],
        "assd_mm": out["assd"],
        "nsd": out["nsd"],
    }


def _candidate(ref_mask, ref_centre, pred: SegLesion, pred_centroid) -> float | None:
    """IoU when the pair may match, else None."""
    iou = 0.0
    if ref_mask is not None:
        inter = ref_mask.intersection(pred.mask)
        if inter:
            iou = inter / (ref_mask.voxels + pred.mask.voxels - inter)
    if iou > 0 or _holds(ref_mask, pred_centroid) or _holds(pred.mask, ref_centre):
        return iou
    return None


def match_scan(
    scan: Scan,
    lesions: Sequence[Lesion],
    predictions: Sequence[SegLesion],
    tolerance_mm: float,
) -> tuple[list[_Row], list[dict]]:
    """Reference rows of one scan (scan index filled in later) and its predictions' fate."""
    scored = [les for les in lesions if not les.excluded]
    excluded = [les for les in lesions if les.excluded]
    masks = [_clip(reference_mask(les), scan.shape) for les in scored]
    centres = [_centre_voxel(scan, les) for les in scored]
    centroids = [_centroid(p.mask) for p in predictions]
    rows = [_Row(-1, les, m is not None) for les, m in zip(scored, masks, strict=True)]
    matched_pred: dict[int, int] = {}
    if scored and predictions:
        weight = np.zeros((len(scored), len(predictions)))
        allowed = np.zeros_like(weight, dtype=bool)
        for i, (m, c) in enumerate(zip(masks, centres, strict=True)):
            for j, p in enumerate(predictions):
                iou = _candidate(m, c, p, centroids[j])
                if iou is not None:
                    allowed[i, j] = True
                    weight[i, j] = iou + 1e-9  # a centre-only candidate still counts
        ri, ci = linear_sum_assignment(weight, maximize=True)
        for i, j in zip(ri.tolist(), ci.tolist(), strict=True):
            if allowed[i, j]:
                matched_pred[j] = i
    spacing = spacing_of(scan)
    for j, i in matched_pred.items():
        row = rows[i]
        row.matched = True
        row.by = predictions[j].label
        if masks[i] is not None:
            row.measures = pair_measures(masks[i], predictions[j].mask, spacing, tolerance_mm)
    ex_masks = [_clip(reference_mask(les), scan.shape) for les in excluded]
    ex_centres = [_centre_voxel(scan, les) for les in excluded]
    fates = []
    for j, p in enumerate(predictions):
        if j in matched_pred:
            status, ref = "matched", scored[matched_pred[j]].lesion_id
        else:
            touching = [
                les.lesion_id
                for les, m, c in zip(excluded, ex_masks, ex_centres, strict=True)
                if _candidate(m, c, p, centroids[j]) is not None
            ]
            status, ref = ("ignored", touching[0]) if touching else ("false_positive", None)
        fates.append(
            {
                "series_uid": p.series_uid,
                "segment_number": p.segment_number,
                "label": p.label,
                "voxels": p.mask.voxels,
                "probability": p.probability,
                "status": status,
                "lesion_id": ref,
            }
        )
    return rows, fates


def _bootstrap_counts(n_scans: int, bootstrap: int, seed: int) -> np.ndarray:
    """(B, S) how often each scan is drawn in each resample."""
    idx = np.random.default_rng(seed).integers(0, n_scans, size=(bootstrap, n_scans))
    flat = (idx + (np.arange(bootstrap) * n_scans)[:, None]).ravel()
    return np.bincount(flat, minlength=bootstrap * n_scans).reshape(bootstrap, n_scans)


def _figures(
    table: dict[str, np.ndarray], fp: np.ndarray | None, counts: np.ndarray | None
) -> dict[str, dict]:
    """Figures from per-scan sums; `counts` (B, S) resample weights or None."""
    ratios = {
        "dice": ("dice", "outlined"),
        "nsd": ("nsd", "outlined"),
        "hd95_mm": ("hd95", "measured"),
        "assd_mm": ("assd", "measured"),
        "lesion_sensitivity": ("matched", "lesions"),
    }
    out = {}
    for name in FIGURES:
        if name == "false_positive_lesions_per_scan":
            if fp is None or not len(fp):
                out[name] = {"value": None, "ci": None}
                continue
            num, den = fp, np.ones(len(fp))
        else:
            num, den = table[ratios[name][0]], table[ratios[name][1]]
        total = den.sum()
        value = float(num.sum() / total) if total else None
        ci = None
        if counts is not None and value is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                vals = (counts @ num) / (counts @ den)
            vals = vals[np.isfinite(vals)]
            if len(vals):
                ci = [float(v) for v in np.percentile(vals, [2.5, 97.5])]
        out[name] = {"value": value, "ci": ci}
    return out


def _sums(rows: list[_Row], n_scans: int) -> dict[str, np.ndarray]:
    """Per-scan sums of the lesion measures of `rows`."""
    idx = np.array([r.scan for r in rows], dtype=int)

    def total(values) -> np.ndarray:
        return np.bincount(idx, weights=np.asarray(values, dtype=float), minlength=n_scans)

    outlined = [r.outlined for r in rows]
    measured = [r.measures is not None for r in rows]
    return {
        "lesions": total(np.ones(len(rows))),
        "matched": total([r.matched for r in rows]),
        "outlined": total(outlined),
        "measured": total(measured),
        "dice": total([r.measures["dice"] if r.measures else 0.0 for r in rows]),
        "nsd": total([r.measures["nsd"] if r.measures else 0.0 for r in rows]),
        "hd95": total([r.measures["hd95_mm"] if r.measures else 0.0 for r in rows]),
        "assd": total([r.measures["assd_mm"] if r.measures else 0.0 for r in rows]),
    }


def _clean(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


def evaluate_segmentation(
    truth: Truth,
    segments: Sequence[SegLesion],
    *,
    tolerance_mm: float = 2.0,
    bootstrap: int = 1000,
    seed: int = 0,
    strata: bool = True,
) -> dict:
    scans = list(truth.scans)
    index = {s.series_uid: i for i, s in enumerate(scans)}
    by_scan_lesions: dict[str, list[Lesion]] = {}
    for les in truth.lesions:
        by_scan_lesions.setdefault(les.series_uid, []).append(les)
    by_scan_preds: dict[str, list[SegLesion]] = {}
    for p in segments:
        if p.series_uid in index:
            by_scan_preds.setdefault(p.series_uid, []).append(p)
    rows: list[_Row] = []
    fates: list[dict] = []
    fp = np.zeros(len(scans))
    for i, scan in enumerate(scans):
        r, f = match_scan(
            scan,
            by_scan_lesions.get(scan.series_uid, []),
            by_scan_preds.get(scan.series_uid, []),
            tolerance_mm,
        )
        for row in r:
            row.scan = i
        rows += r
        fates += f
        fp[i] = sum(1 for x in f if x["status"] == "false_positive")
    n = len(scans)
    counts = _bootstrap_counts(n, bootstrap, seed) if bootstrap and n else None
    out_figures = _figures(_sums(rows, n), fp, counts)
    out_strata: dict[str, dict] = {}
    if strata:
        for key in SCAN_STRATA:
            levels = np.array([s.strata.get(key, "unknown") for s in scans])
            out_strata[key] = {}
            for level in sorted(set(levels.tolist())):
                keep = np.flatnonzero(levels == level)
                remap = {int(k): j for j, k in enumerate(keep)}
                sub = [
                    _Row(remap[r.scan], r.lesion, r.outlined, r.matched, r.by, r.measures)
                    for r in rows
                    if r.scan in remap
                ]
                sub_counts = _bootstrap_counts(len(keep), bootstrap, seed) if bootstrap else None
                out_strata[key][level] = {
                    "scans": len(keep),
                    "lesions": len(sub),
                    "figures": _figures(_sums(sub, len(keep)), fp[keep], sub_counts),
                }
        for key in LESION_STRATA:
            levels = [r.lesion.strata.get(key, "unknown") for r in rows]
            out_strata[key] = {}
            for level in sorted(set(levels)):
                sub = [r for r, lv in zip(rows, levels, strict=True) if lv == level]
                out_strata[key][level] = {
                    "scans": len({r.scan for r in sub}),
                    "lesions": len(sub),
                    "figures": _figures(_sums(sub, n), None, counts),
                }
    cases, positive = case_truth(truth)
    listing = []
    for r in rows:
        m = r.measures or {}
        listing.append(
            {
                "lesion_id": r.lesion.lesion_id,
                "series_uid": r.lesion.series_uid,
                "matched": r.matched,
                "by": r.by,
                "outlined": r.outlined,
                "dice": _clean(m.get("dice", 0.0 if r.outlined else None)),
                "iou": _clean(m.get("iou", 0.0 if r.outlined else None)),
                "hd95_mm": _clean(m.get("hd95_mm")),
                "assd_mm": _clean(m.get("assd_mm")),
                "nsd": _clean(m.get("nsd", 0.0 if r.outlined else None)),
                "strata": dict(r.lesion.strata),
            }
        )
    return {
        "kind": "segmentation",
        "figures": out_figures,
        "strata": out_strata,
        "lesions": listing,
        "predictions": fates,
        "conventions": {
            "tolerance_mm": f"NSD tolerance {float(tolerance_mm)} mm",
            "bootstrap": {
                "resamples": int(bootstrap),
                "seed": int(seed),
                "unit": "scan",
                "interval": "percentile 95%",
            },
            **CONVENTIONS,
        },
        "counts": {
            "scans": n,
            "lesions": len(rows),
            "excluded_lesions": sum(1 for les in truth.lesions if les.excluded),
            "marks": len(segments),
            "cases": len(cases),
            "positive_cases": int(positive.sum()),
        },
    }
