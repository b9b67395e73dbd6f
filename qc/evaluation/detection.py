"""Detection products scored the LUNA16 way, under every match rule RefSet knows.

Input: a `Truth` (the version's scans and reference lesions) and the product's
marks (`Detection`: series_uid, x, y, z in patient mm, probability, CSV line).
Framework-free and vectorised; every convention below is also written into the
result's "conventions" in plain English.

Conventions (LUNA16's evaluation script, noduleCADEvaluationLUNA16.py):
- A mark hits a reference lesion under the rule in force (LUNA16: its centre
  lies strictly within the lesion's radius, diameter / 2, in 3D patient mm; the
  script compares squared distances with "<"). A lesion without a diameter is
  given 10 mm, as the script does for findings of unknown size; one without a
  centre cannot be hit by a distance rule.
- A mark that hits an excluded lesion and no scored one is neither a hit nor a
  false positive. A mark that hits no lesion is a false positive.
- Several marks on one lesion count once, at the most probable of them; the
  others are neither hits nor false positives.
- A mark within two lesions' radii counts as a hit for each (the script keeps
  it in both lesions' lists and prints a warning); it is never a false positive.
- FROC: at each distinct probability threshold t, sensitivity = scored lesions
  whose best mark has probability >= t / scored lesions, and FP per scan =
  false-positive marks with probability >= t / scans (all scans, with or
  without lesions), starting from (0, 0) above every probability. Between
  these operating points the curve is linear (numpy.interp, as the script
  interpolates sklearn's ROC points); where several points share one FP rate
  the highest sensitivity among them counts; beyond the last point it is flat.
- CPM: mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4, 8 FP per scan, read off that
  curve exactly at each rate (the script reads a 10001-point grid; the
  difference is below 1e-3 FP per scan).
- MONAI-style FROC score: the mean sensitivity at 0.25, 0.5, 1, 2, 4, 8 FP per
  scan (monai.metrics.compute_froc_score's default thresholds, which also
  interpolates linearly between operating points).
- Metrics Reloaded FROC AUC: Metrics Reloaded (ProbabilityPairwiseMeasures.froc)
  integrates sensitivity over FP per image with the trapezoidal rule over the
  operating points, curve cut at 8 FP per image and extended flat to 8 when it
  ends earlier. Here: the same area from 0 to 8 FP per scan under the curve
  above (closed exactly at 8 by interpolation), divided by 8 so that it lies in
  [0, 1] (Metrics Reloaded's raw value is 8 times this).
- At the operating threshold: lesion sensitivity, FP per scan and
  F1 = 2 TP / (2 TP + FP + FN) with TP the scored lesions hit by a mark at or
  above it, FN the others, FP the false-positive marks at or above it.
- Patient level: a patient is positive by the product when any of its marks
  (any scan, any lesion or none) reaches the operating threshold, positive by
  the truth when it has a scored lesion or an adjudicated positive case label.

Rules (one table, the version's declared rule marked): centre within radius
(LUNA16), centre in contour, IoU >= 0.1 in 3D with the point mark taken as a
sphere of the lesion's diameter, and the declared rule when it is another one;
qc.evaluation.detection_hits says how each is tested.

Bootstrap (qc.evaluation.bootstrap): scans drawn with replacement; every figure
is a weighted sum over scans, so all resamples come from matrix products
(weights = draw counts). Strata: scan strata (site, manufacturer, slice
thickness) take the scans of a level with all their lesions; lesion strata
(finding type, size, agreement) take the lesions of a level, with false
positives counted over all scans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qc.evaluation import bootstrap as bs
from qc.evaluation.detection_hits import (
    CONTOUR,
    DICE,
    DISTANCE,
    EITHER,
    IOU,
    PYLIDC,
    RADIUS,
    Marks,
    Matcher,
    marks_of,
)
from qc.evaluation.truth import LESION_STRATA, SCAN_STRATA, Truth

CPM_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MONAI_RATES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MR_MAX_FP = 8.0
# FP-per-scan grid of the stored curve and its band: 0, then 2**(k/2) from 1/16
# to 64 (the CPM and MONAI rates are on it exactly).
CURVE_GRID = (0.0,) + tuple(2.0 ** (k / 2) for k in range(-8, 13))
DEFAULT_OPERATING_THRESHOLD = 0.5

KNOWN_RULES = ((RADIUS, None), (CONTOUR, None), (IOU, 0.1))

DETECTION_FIGURES = (
    "cpm",
    "froc_score_monai",
    "froc_auc_metrics_reloaded",
    "sensitivity",
    "fp_per_scan",
    "f1",
    "patient_sensitivity",
    "patient_specificity",
) + tuple(f"sens_at_{r:g}" for r in CPM_RATES)

CONVENTIONS = {
    "hit": (
        "Under the centre-within-radius rule (LUNA16) a mark hits a reference lesion when its "
        "centre lies strictly within the lesion's radius (diameter / 2) in 3D patient "
        "millimetres; a lesion without a diameter is given 10 mm as LUNA16 does; a lesion "
        "without a centre cannot be hit by a distance rule."
    ),
    "excluded_findings": (
        "A mark that hits an excluded finding and no scored lesion is neither a hit nor a false "
        "positive; excluded findings are not counted in sensitivity."
    ),
    "multiple_hits": (
        "Several marks on one lesion count once, at the probability of the most probable of "
        "them; the other marks are neither hits nor false positives."
    ),
    "marks_on_two_lesions": (
        "A mark that hits two lesions counts as a hit for each of them (as LUNA16's script "
        "does) and is never a false positive."
    ),
    "false_positives": (
        "A mark that hits no lesion (scored or excluded) is a false positive; FP per scan "
        "divides by all scans, with or without lesions."
    ),
    "froc_curve": (
        "Operating points at every distinct probability threshold t (marks with probability "
        ">= t count), starting from (0, 0); linear between operating points (numpy.interp "
        "over the points, as LUNA16 interpolates sklearn's ROC points); where several points "
        "share one FP rate the highest sensitivity counts; flat beyond the last point."
    ),
    "froc_fp_rates": "1/8, 1/4, 1/2, 1, 2, 4, 8 false positives per scan (sens_at_* figures).",
    "cpm": (
        "Competition performance metric (LUNA16): mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 "
        "and 8 FP per scan, read off the interpolated FROC curve exactly at each rate (LUNA16's "
        "script reads a 10001-point grid between 1/8 and 8)."
    ),
    "froc_score_monai": (
        "MONAI-style FROC score: mean sensitivity at 0.25, 0.5, 1, 2, 4 and 8 FP per scan "
        "(the default thresholds of monai.metrics.compute_froc_score), on the same curve."
    ),
    "froc_auc_metrics_reloaded": (
        "Area under the FROC curve as Metrics Reloaded computes it (trapezoidal rule over the "
        "operating points, FP per scan from 0 to 8, curve cut at 8 and extended flat to 8 when "
        "it ends earlier), closed exactly at 8 FP per scan by interpolation and divided by 8 "
        "so that it lies in [0, 1]; Metrics Reloaded's unnormalised value is 8 times this."
    ),
    "operating_point": (
        "At the operating threshold: sensitivity = scored lesions hit by a mark with "
        "probability >= threshold / scored lesions; fp_per_scan = false-positive marks at or "
        "above it / scans; f1 = 2 TP / (2 TP + FP + FN), TP and FN counted per lesion, FP per "
        "mark."
    ),
    "patient_level": (
        "A patient is positive by the product when any of its marks reaches the operating "
        "threshold, and positive by the truth when it has a scored (non-excluded) lesion or "
        "an adjudicated positive case label; patient_sensitivity and patient_specificity are "
        "over patients. In the bootstrap each drawn scan stands for its patient with weight "
        "1 / (the patient's scans)."
    ),
    "rules": (
        "Every rule is scored: centre_within_radius (LUNA16), centre_in_contour (the mark's "
        "centre mapped to its nearest slice lies inside the lesion's outline on that slice; a "
        "lesion without an outline there cannot be hit), overlap_iou >= 0.1 in 3D (the mark, "
        "a point, is taken as a sphere of the lesion's own diameter centred on it, rasterised "
        "on the scan grid; a lesion drawn without an outline is a sphere of its diameter about "
        "its centre; voxels whose centres lie inside count), and the version's declared rule "
        "when it is another one. The same LUNA16 conventions apply under every rule."
    ),
    "strata": (
        "Strata are scored under the rule in force (the rule table gives the whole set only). "
        "Scan strata (site, manufacturer, slice_thickness): the scans of a level with all their "
        "lesions and marks. Lesion strata (finding_type, size, agreement): sensitivity over the "
        "lesions of the level, false positives per scan over all scans; patient-level figures "
        "are not given for lesion strata."
    ),
    "bootstrap_detail": (
        "Scans are drawn with replacement (numpy PCG64 seeded with the stated seed); a drawn "
        "scan brings its lesions and marks; resamples in which a figure is undefined (no "
        "lesion drawn) are left out of its interval; the FROC band is the percentile interval "
        "of the resampled curves at each FP rate of the curve's grid."
    ),
}


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Scored:
    """One rule's outcome in arrays: what every figure (and resample) is computed from."""

    n_scans: int
    l_scan: np.ndarray  # scored lesions: scan index
    l_best: np.ndarray  # probability of the best hitting mark, -inf if missed
    l_by: np.ndarray  # index of that mark, -1 if missed
    l_index: np.ndarray  # index into truth.lesions
    f_scan: np.ndarray  # false-positive marks: scan index
    f_prob: np.ndarray
    scan_max: np.ndarray  # per scan, the most probable mark (-inf without marks)
    mark_kind: np.ndarray  # per mark: 1 hit, 0 false positive, 2 on excluded only
    x_best: np.ndarray  # per lesion of truth.lesions: best hitting mark probability
    x_by: np.ndarray  # per lesion of truth.lesions: that mark's index


def score(truth: Truth, marks: Marks, matcher: Matcher, rule: str, threshold) -> Scored:
    p_les, p_mark = matcher.hits(rule, threshold)
    n_les = len(truth.lesions)
    excluded = np.asarray([les.excluded for les in truth.lesions], dtype=bool)
    scored = ~excluded & (matcher.l_scan >= 0)
    m = len(marks.prob)
    on_scored = np.zeros(m, dtype=bool)
    on_excluded = np.zeros(m, dtype=bool)
    on_scored[p_mark[scored[p_les]]] = True
    on_excluded[p_mark[excluded[p_les]]] = True
    # best mark per lesion: highest probability, then lowest line / index
    best = np.full(n_les, -np.inf)
    by = np.full(n_les, -1, dtype=np.int64)
    if len(p_les):
        order = np.lexsort((marks.line[p_mark], -marks.prob[p_mark], p_les))
        first = np.ones(len(order), dtype=bool)
        first[1:] = p_les[order][1:] != p_les[order][:-1]
        sel = order[first]
        best[p_les[sel]] = marks.prob[p_mark[sel]]
        by[p_les[sel]] = p_mark[sel]
    fp = ~on_scored & ~on_excluded
    kind = np.where(on_scored, 1, np.where(on_excluded, 2, 0))
    scan_max = np.full(len(truth.scans), -np.inf)
    np.maximum.at(scan_max, marks.scan, marks.prob)
    idx = np.flatnonzero(scored)
    return Scored(
        n_scans=len(truth.scans),
        l_scan=matcher.l_scan[idx],
        l_best=best[idx],
        l_by=by[idx],
        l_index=idx,
        f_scan=marks.scan[fp],
        f_prob=marks.prob[fp],
        scan_max=scan_max,
        mark_kind=kind,
        x_best=best,
        x_by=by,
    )


def _fp_above(sc: Scored, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, K) counts of false-positive marks per scan with probability > and >= each
    threshold; exact integer ranks, no float keys."""
    s_n, k = sc.n_scans, len(thresholds)
    if k == 0 or len(sc.f_prob) == 0:
        z = np.zeros((s_n, k))
        return z, z
    values = np.unique(np.concatenate([sc.f_prob, thresholds]))
    f_rank = np.searchsorted(values, sc.f_prob)
    t_rank = np.searchsorted(values, thresholds)
    r = len(values) + 1
    keys = np.sort(sc.f_scan * r + f_rank)
    per_scan = np.bincount(sc.f_scan, minlength=s_n).astype(float)
    base = (np.arange(s_n) * r)[:, None]
    upto_le = np.searchsorted(keys, base + t_rank[None, :], side="right")  # rank <= t
    upto_lt = np.searchsorted(keys, base + t_rank[None, :], side="left")  # rank < t
    first = np.searchsorted(keys, base, side="left")
    gt = per_scan[:, None] - (upto_le - first)
    ge = per_scan[:, None] - (upto_lt - first)
    return gt.astype(float), ge.astype(float)


@dataclass
class _Prepared:
    """What every resample of one rule (and stratum) reuses."""

    sc: Scored
    hit: np.ndarray  # indices into sc.l_* of the hit lesions
    gt: np.ndarray  # (S, H) FP per scan with probability > the lesion's best
    tie: np.ndarray | None  # (S, H) FP per scan with probability == the lesion's best
    fp_op: np.ndarray  # (S,) FP marks at or above the operating threshold
    tp_op: np.ndarray  # (L,) lesion hit at or above the operating threshold
    pos_op: np.ndarray  # (S,) scan has any mark at or above it
    threshold: float


def prepare(sc: Scored, operating_threshold: float) -> _Prepared:
    hit = np.flatnonzero(np.isfinite(sc.l_best))
    gt, ge = _fp_above(sc, sc.l_best[hit])
    tie = ge - gt
    fp_op = np.bincount(sc.f_scan[sc.f_prob >= operating_threshold], minlength=sc.n_scans).astype(
        float
    )
    return _Prepared(
        sc=sc,
        hit=hit,
        gt=gt,
        tie=tie if tie.any() else None,
        fp_op=fp_op,
        tp_op=(sc.l_best >= operating_threshold).astype(float),
        pos_op=(sc.scan_max >= operating_threshold),
        threshold=operating_threshold,
    )


def _step_sum(x: np.ndarray, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sum_l w_l [a_l <= x] per row, for integer-valued a (FP counts): a sort per
    row and one searchsorted over all rows (row offsets keep the keys exact).

    x: (R, G); a, w: (R, H). Returns (R, G)."""
    r, h = a.shape
    if h == 0 or r == 0:
        return np.zeros(x.shape)
    order = np.argsort(a, axis=1, kind="stable")
    a_s = np.take_along_axis(a, order, axis=1)
    cw = np.zeros((r, h + 1))
    np.cumsum(np.take_along_axis(w, order, axis=1), axis=1, out=cw[:, 1:])
    big = float(a_s.max()) + 2.0
    off = (np.arange(r) * big)[:, None]
    keys = (a_s + off).ravel()
    q = np.minimum(np.floor(x), big - 1.0) + off
    pos = np.searchsorted(keys, q.ravel(), side="right").reshape(x.shape)
    return np.take_along_axis(cw, pos - (np.arange(r) * h)[:, None], axis=1)


def _ramp_sum(x, a, b, w, tie):
    """sum_l w_l * ramp(x; a_l, b_l): 0 below a, 1 from b on, linear between.

    x: (R, G) FP counts at which to read; a, b, w: (R, H). Returns (R, G)."""
    step = _step_sum(x, a, w)
    if tie is None:
        return step
    # lesions tied with false positives: linear between a and b instead of a step at a
    cols = np.flatnonzero(tie.any(axis=0))
    if len(cols) == 0:
        return step
    at, bt, wt = a[:, cols], b[:, cols], w[:, cols]
    xx = x[:, None, :]
    span = (bt - at)[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        lin = np.where(
            xx >= bt[:, :, None],
            1.0,
            np.where(xx > at[:, :, None], (xx - at[:, :, None]) / span, 0.0),
        )
    stepped = (at[:, :, None] <= xx).astype(float)
    return step + ((lin - stepped) * wt[:, :, None]).sum(axis=1)


def _area(x8, a, b, w):
    """sum_l w_l * integral_0^x8 ramp(x; a_l, b_l) dx. x8: (R,); a, b, w: (R, H)."""
    x = x8[:, None]
    span = b - a
    with np.errstate(divide="ignore", invalid="ignore"):
        part = np.where(
            x >= b,
            x - (a + b) / 2.0,
            np.where(x > a, (x - a) ** 2 / (2.0 * np.where(span > 0, span, 1.0)), 0.0),
        )
    return (part * w).sum(axis=1)


def figures_for(
    prep: _Prepared,
    weights: np.ndarray,
    *,
    scans: np.ndarray | None = None,
    lesions: np.ndarray | None = None,
    patients: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    grid: Sequence[float] = CURVE_GRID,
    ab: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Every detection figure for each row of `weights` (R, S): draw counts per scan.

    `scans` (bool, S) restricts to the scans of a scan stratum (their lesions and
    false positives); `lesions` (bool over the scored lesions) to the lesions of a
    lesion stratum (false positives still over the scans in force). `patients`
    = (scan weight per patient scan, truth positive per scan, product positive per
    scan), or None to leave the patient-level figures out. `ab`: the FP counts
    above each hit lesion for these weights over all scans (`fp_above_hits`), to
    reuse for lesion strata. Returns name -> (R,) arrays and "curve" -> (R, G).
    """
    sc = prep.sc
    s_n = sc.n_scans
    weights = np.asarray(weights, dtype=float)
    if scans is not None:
        weights = weights * scans[None, :]
    l_sel = np.ones(len(sc.l_scan), dtype=bool) if lesions is None else lesions
    hit_sel = l_sel[prep.hit]
    hit_cols = prep.hit[hit_sel]
    gt = prep.gt[:, hit_sel]
    tie = None if prep.tie is None else prep.tie[:, hit_sel]
    if tie is not None and not tie.any():
        tie = None
    grid_arr = np.asarray(grid, dtype=float)
    rates = {r: int(np.flatnonzero(grid_arr == r)[0]) for r in CPM_RATES}

    # every per-scan sum in one product: scans, lesions, hits and FP at the
    # operating threshold, patient counts
    columns = [
        np.ones(s_n),
        np.bincount(sc.l_scan[l_sel], minlength=s_n),
        np.bincount(sc.l_scan[l_sel], weights=prep.tp_op[l_sel], minlength=s_n),
        prep.fp_op,
    ]
    if patients is not None:
        pw, truth_pos, prod_pos = patients
        columns += [pw * (truth_pos & prod_pos), pw * truth_pos,
                    pw * (~truth_pos & ~prod_pos), pw * ~truth_pos]  # fmt: skip
    sums = weights @ np.stack(columns, axis=1).astype(float)
    n, total, tp, fp = sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        res: dict[str, np.ndarray] = {
            "sensitivity": tp / total,
            "fp_per_scan": fp / n,
            "f1": 2 * tp / (2 * tp + fp + (total - tp)),
        }
        if patients is not None:
            res["patient_sensitivity"] = sums[:, 4] / sums[:, 5]
            res["patient_specificity"] = sums[:, 6] / sums[:, 7]

    hw = weights[:, sc.l_scan[hit_cols]]
    if ab is not None and scans is None:
        a, b = ab[0][:, hit_sel], ab[1][:, hit_sel]
    else:
        rows = np.arange(s_n) if scans is None else np.flatnonzero(scans)
        w = weights[:, rows]
        a = w @ gt[rows]
        b = a if tie is None else a + w @ tie[rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = _ramp_sum(n[:, None] * grid_arr[None, :], a, b, hw, tie) / total[:, None]
        area = _area(n * MR_MAX_FP, a, b, hw)
        res["froc_auc_metrics_reloaded"] = area / (total * n * MR_MAX_FP)
    res["curve"] = curve
    res["cpm"] = curve[:, [rates[r] for r in CPM_RATES]].mean(axis=1)
    res["froc_score_monai"] = curve[:, [rates[r] for r in MONAI_RATES]].mean(axis=1)
    for r in CPM_RATES:
        res[f"sens_at_{r:g}"] = curve[:, rates[r]]
    return res


def fp_above_hits(prep: _Prepared, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of weights and per hit lesion: the weighted count of false positives
    with probability above its best mark, and at or above it."""
    a = weights @ prep.gt
    return a, (a if prep.tie is None else a + weights @ prep.tie)


def _patients(truth: Truth, sc: Scored, pos_op: np.ndarray, scans: np.ndarray | None):
    """Per scan: 1 / (its patient's scans in force), patient truth and product positive."""
    s_n = len(truth.scans)
    keep = np.ones(s_n, dtype=bool) if scans is None else scans
    pid = [s.patient_id or s.case_id or s.series_uid for s in truth.scans]
    ids = {p: i for i, p in enumerate(dict.fromkeys(pid))}
    p_of = np.asarray([ids[p] for p in pid], dtype=np.int64)
    n_p = len(ids)
    has_lesion = np.zeros(s_n, dtype=bool)
    has_lesion[sc.l_scan] = True
    labelled = np.asarray([s.case_label == "positive" for s in truth.scans], dtype=bool)
    truth_p = np.zeros(n_p, dtype=bool)
    prod_p = np.zeros(n_p, dtype=bool)
    np.logical_or.at(truth_p, p_of[keep], (has_lesion | labelled)[keep])
    np.logical_or.at(prod_p, p_of[keep], pos_op[keep])
    count = np.bincount(p_of[keep], minlength=n_p).astype(float)
    pw = np.where(keep, 1.0 / np.maximum(count[p_of], 1.0), 0.0)
    return pw, truth_p[p_of], prod_p[p_of]


def curve_thresholds(sc: Scored, grid: Sequence[float] = CURVE_GRID) -> list[float | None]:
    """The lowest probability threshold whose FP per scan is at most each grid rate
    (None when even the highest mark is already past it)."""
    events = np.unique(np.concatenate([sc.f_prob, sc.l_best[np.isfinite(sc.l_best)]]))
    fp_desc = np.sort(sc.f_prob)[::-1]
    out: list[float | None] = []
    for r in grid:
        k = math.floor(r * sc.n_scans)
        if k >= len(fp_desc):
            out.append(float(events[0]) if len(events) else None)
            continue
        above = np.searchsorted(events, fp_desc[k], side="right")
        out.append(float(events[above]) if above < len(events) else None)
    return out


# --------------------------------------------------------------------------- the result


def _normalise(rule: str, threshold: float | None) -> tuple[str, float | None, str]:
    """A rule as scored: (rule, threshold or None, note when it had to be changed)."""
    if rule in (RADIUS, CONTOUR):
        return rule, None, ""
    if rule == DISTANCE and not (threshold and threshold > 0):
        return (
            RADIUS,
            None,
            "The version declares centre_distance without a positive threshold; the LUNA16 "
            "centre-within-radius rule is used in its place.",
        )
    if rule in (IOU, DICE) and not threshold:
        return rule, 0.1, ""
    return rule, None if threshold is None else float(threshold), ""


def _rule_list(truth: Truth, rule: str | None, threshold: float | None, all_rules: bool):
    """The rule in force (rule, threshold, note) and the rule table's entries."""
    if rule is None:
        rule, threshold = truth.rule, truth.threshold
    primary, primary_t, note = _normalise(rule, threshold)
    entries: list[tuple[str, float | None]] = [(primary, primary_t)]
    if all_rules:
        declared = _normalise(truth.rule, truth.threshold)[:2]
        for entry in (*KNOWN_RULES, declared):
            if entry not in entries:
                entries.append(entry)
    return primary, primary_t, note, entries


def rule_in_force(
    truth: Truth, rule: str | None = None, threshold: float | None = None
) -> tuple[str, float | None, str]:
    """The rule a detection is scored under: `rule` (default the version's declared
    one), its threshold, and a note when the declared rule had to be replaced."""
    primary, primary_t, note, _ = _rule_list(truth, rule, threshold, False)
    return primary, primary_t, note


def _is_declared(truth: Truth, rule: str, threshold) -> bool:
    d_rule, d_t, _ = _normalise(truth.rule, truth.threshold)
    if rule != d_rule:
        return False
    return (d_t is None and threshold is None) or (
        d_t is not None and threshold is not None and math.isclose(float(threshold), d_t)
    )


def _describe(rule: str, threshold) -> str:
    return {
        RADIUS: "centre within the lesion's radius (LUNA16)",
        CONTOUR: "centre, on its nearest slice, inside the lesion's outline",
        IOU: f"IoU in 3D >= {threshold:g} (mark as a sphere of the lesion's diameter)"
        if threshold
        else "",
        DICE: f"Dice in 3D >= {threshold:g} (mark as a sphere of the lesion's diameter)"
        if threshold
        else "",
        DISTANCE: f"centres at most {threshold:g} mm apart" if threshold else "",
        EITHER: f"centres at most {threshold:g} mm apart, or centre inside the outline"
        if threshold is not None
        else "",
        PYLIDC: "pylidc's minimum contour distance (qc.matching)",
    }.get(rule, rule)


def _figs(values: dict[str, np.ndarray], has_boot: bool, names=DETECTION_FIGURES) -> dict:
    out = {}
    for name in names:
        if name not in values:
            out[name] = {"value": None, "ci": None}
            continue
        v = values[name]
        out[name] = bs.figure(float(v[0]), v[1:] if has_boot else None)
    return out


def evaluate_detection(
    truth: Truth,
    detections: Sequence[Any],
    *,
    rule: str | None = None,
    threshold: float | None = None,
    operating_threshold: float = DEFAULT_OPERATING_THRESHOLD,
    bootstrap: int = 1000,
    seed: int = 0,
    strata: bool = True,
    all_rules: bool = True,
) -> dict:
    """Score a detection product (see the module doc); a JSON-ready dict."""
    if operating_threshold is None:
        operating_threshold = DEFAULT_OPERATING_THRESHOLD
    marks = marks_of(truth, detections)
    matcher = Matcher(truth, marks)
    primary, primary_t, note, entries = _rule_list(truth, rule, threshold, all_rules)
    s_n = len(truth.scans)
    w_all = np.vstack([np.ones((1, s_n)), bs.weights(s_n, bootstrap, seed)])
    has_boot = bootstrap > 0

    rules_out = []
    primary_values = primary_prep = primary_ab = None
    for r, t in entries:
        sc = score(truth, marks, matcher, r, t)
        prep = prepare(sc, operating_threshold)
        ab = fp_above_hits(prep, w_all)
        values = figures_for(prep, w_all, patients=_patients(truth, sc, prep.pos_op, None), ab=ab)
        if primary_values is None:
            primary_values, primary_prep, primary_ab = values, prep, ab
        rules_out.append(
            {
                "rule": r,
                "threshold": None if t is None else float(t),
                "declared": _is_declared(truth, r, t),
                "description": _describe(r, t),
                "figures": _figs(values, has_boot),
            }
        )
    assert primary_values is not None and primary_prep is not None
    sc = primary_prep.sc
    curve = primary_values["curve"]
    lo, hi = bs.interval(curve[1:]) if has_boot else (np.full(len(CURVE_GRID), np.nan),) * 2

    result: dict[str, Any] = {
        "kind": "detection",
        "conventions": conventions(
            truth, primary, primary_t, operating_threshold, bootstrap, seed, note
        ),
        "figures": _figs(primary_values, has_boot),
        "counts": _counts(truth, marks, sc),
        "curves": {
            "froc": {
                "fp_per_scan": [float(g) for g in CURVE_GRID],
                "sensitivity": _floats(curve[0]),
                "ci_low": _floats(lo),
                "ci_high": _floats(hi),
                "thresholds": curve_thresholds(sc),
            }
        },
        "rules": rules_out,
        "strata": _strata(truth, primary_prep, w_all, has_boot, primary_ab) if strata else {},
        "lesions": _lesion_list(truth, marks, sc, operating_threshold),
    }
    return result


def _floats(a) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(a, dtype=float)]


def conventions(truth, rule, threshold, operating_threshold, resamples, seed, note="") -> dict:
    out: dict[str, Any] = {
        "rule": rule,
        "threshold": None if threshold is None else float(threshold),
        "declared_rule": truth.rule,
        "declared_threshold": float(truth.threshold),
        "operating_threshold": float(operating_threshold),
        "bootstrap": {
            "resamples": int(resamples),
            "seed": int(seed),
            "unit": "scan",
            "interval": bs.INTERVAL,
        },
        "rule_description": _describe(rule, threshold),
    }
    out.update(CONVENTIONS)
    if note:
        out["rule_note"] = note
    return out


def _counts(truth: Truth, marks: Marks, sc: Scored) -> dict[str, int]:
    excluded = sum(1 for les in truth.lesions if les.excluded)
    cases = {s.case_id for s in truth.scans}
    positive = {s.case_id for s in truth.scans if s.case_label == "positive"}
    positive |= {truth.scans[i].case_id for i in sc.l_scan}
    return {
        "scans": len(truth.scans),
        "lesions": len(sc.l_scan),
        "excluded_lesions": excluded,
        "marks": len(marks.prob),
        "cases": len(cases),
        "positive_cases": len(positive),
        "hit_marks": int((sc.mark_kind == 1).sum()),
        "false_positive_marks": int((sc.mark_kind == 0).sum()),
        "marks_on_excluded_only": int((sc.mark_kind == 2).sum()),
    }


def _lesion_list(truth: Truth, marks: Marks, sc: Scored, op: float) -> list[dict]:
    out = []
    for j, les in enumerate(truth.lesions):
        best = sc.x_best[j]
        by = int(sc.x_by[j])
        matched = bool(np.isfinite(best) and best >= op)
        out.append(
            {
                "lesion_id": les.lesion_id,
                "series_uid": les.series_uid,
                "matched": matched,
                "by": int(marks.line[by]) if matched and by >= 0 else None,
                "excluded": bool(les.excluded),
                "probability": float(best) if np.isfinite(best) else None,
                "finding_type": les.finding_type,
                "diameter_mm": les.diameter_mm,
            }
        )
    return out


def _strata(truth: Truth, prep: _Prepared, w_all: np.ndarray, has_boot: bool, ab) -> dict:
    sc = prep.sc
    out: dict[str, dict] = {}
    lesions = truth.lesions
    for name in SCAN_STRATA:
        levels: dict[str, list[int]] = {}
        for i, s in enumerate(truth.scans):
            levels.setdefault(s.strata.get(name, "unknown") or "unknown", []).append(i)
        out[name] = {}
        for level in sorted(levels):
            mask = np.zeros(len(truth.scans), dtype=bool)
            mask[levels[level]] = True
            values = figures_for(
                prep,
                w_all,
                scans=mask,
                lesions=mask[sc.l_scan],
                patients=_patients(truth, sc, prep.pos_op, mask),
            )
            out[name][level] = {
                "scans": int(mask.sum()),
                "lesions": int(mask[sc.l_scan].sum()),
                "figures": _figs(values, has_boot),
            }
    for name in LESION_STRATA:
        of = np.asarray([lesions[j].strata.get(name, "unknown") or "unknown" for j in sc.l_index])
        out[name] = {}
        for level in sorted(set(of.tolist())):
            sel = of == level
            values = figures_for(prep, w_all, lesions=sel, patients=None, ab=ab)
            out[name][level] = {
                "scans": int(len(np.unique(sc.l_scan[sel]))),
                "lesions": int(sel.sum()),
                "figures": _figs(values, has_boot),
            }
    return out


def cpm_samples(
    truth: Truth, detections: Sequence[Any], weights: np.ndarray, *, rule=None, threshold=None
) -> np.ndarray:
    """CPM for each row of `weights` (R, S) under the rule in force (qc.evaluation.compare)."""
    marks = marks_of(truth, detections)
    matcher = Matcher(truth, marks)
    primary, primary_t, _ = rule_in_force(truth, rule, threshold)
    sc = score(truth, marks, matcher, primary, primary_t)
    prep = prepare(sc, DEFAULT_OPERATING_THRESHOLD)
    return figures_for(prep, weights, grid=CURVE_GRID)["cpm"]


__all__ = [
    "CPM_RATES",
    "CURVE_GRID",
    "DETECTION_FIGURES",
    "KNOWN_RULES",
    "MONAI_RATES",
    "Scored",
    "cpm_samples",
    "evaluate_detection",
    "figures_for",
    "prepare",
    "rule_in_force",
    "score",
]
