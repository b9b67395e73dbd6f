"""Scoring a per-case classification product: ROC, AUC with DeLong's interval.

Conventions (also written into every result's `conventions`):
- truth per case: positive when the adjudicated case label is "positive",
  negative when it is "negative"; a case without a label is positive when it
  has at least one reference lesion that is not excluded, else negative;
- a score at or above a threshold calls the case positive;
- ROC: one point per distinct score, from the highest down, plus (0, 0) for a
  threshold above every score (its threshold is given as null); no point is
  dropped;
- AUC is the Mann-Whitney statistic (ties count half); its 95% interval is
  DeLong's (fast algorithm of Sun & Xu 2014, midranks), AUC +- 1.96 SE clipped
  to [0, 1]; `delong_paired` gives the difference of two AUCs on the same cases
  and its variance (for a paired test);
- Youden's point: the threshold maximising sensitivity + specificity - 1 among
  the distinct scores; ties go to the highest such threshold;
- bootstrap: 1000 (seeded) resamples of cases with replacement, percentile 95%
  interval; resamples without a positive or without a negative case are left
  out of AUC and sensitivity/specificity intervals that need them;
- strata: a case belongs to the site, manufacturer and slice-thickness band of
  its first series in the version's order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

from qc.evaluation.truth import SCAN_STRATA, Truth

Z95 = 1.959963984540054

CONVENTIONS = {
    "case_truth": (
        "positive when the adjudicated case label is positive, negative when it is negative; "
        "an unlabelled case is positive when it has a reference lesion that is not excluded"
    ),
    "threshold_rule": "a score at or above the threshold calls the case positive",
    "roc": (
        "one point per distinct score from the highest down, plus (0, 0) for a threshold above "
        "every score (threshold null); no point dropped"
    ),
    "auc": "Mann-Whitney statistic, ties count one half",
    "auc_ci": "DeLong (fast algorithm, Sun & Xu 2014): AUC +- 1.96 SE, clipped to [0, 1]",
    "youden": (
        "threshold maximising sensitivity + specificity - 1 over the distinct scores; "
        "ties to the highest threshold"
    ),
    "bootstrap_resamples": (
        "cases resampled with replacement; a resample without positives or negatives is left "
        "out of the intervals that need both"
    ),
    "strata": "a case is in the site, manufacturer and slice-thickness band of its first series",
}


# --------------------------------------------------------------------------- DeLong


def _fast_delong(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUCs (k,) and their covariance (k, k) for k score rows over the same cases."""
    y = np.asarray(y, dtype=bool)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    pos, neg = s[:, y], s[:, ~y]
    m, n = pos.shape[1], neg.shape[1]
    if m == 0 or n == 0:
        k = s.shape[0]
        return np.full(k, np.nan), np.full((k, k), np.nan)
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v01 = (tz[:, :m] - tx) / n  # structural components of the positives
    v10 = 1.0 - (tz[:, m:] - ty) / m  # and of the negatives
    sx = np.atleast_2d(np.cov(v01)) if m > 1 else np.zeros((s.shape[0], s.shape[0]))
    sy = np.atleast_2d(np.cov(v10)) if n > 1 else np.zeros((s.shape[0], s.shape[0]))
    return aucs, sx / m + sy / n


def delong(y_true: Sequence, scores: Sequence) -> tuple[float, float]:
    """(AUC, DeLong variance); NaN for both without positives or negatives."""
    aucs, cov = _fast_delong(np.asarray(y_true), np.asarray(scores, dtype=float)[None])
    return float(aucs[0]), float(cov[0, 0])


def delong_paired(y: Sequence, s1: Sequence, s2: Sequence) -> tuple[float, float]:
    """(AUC(s1) - AUC(s2), variance of that difference) on the same cases."""
    aucs, cov = _fast_delong(np.asarray(y), np.vstack([s1, s2]).astype(float))
    return float(aucs[0] - aucs[1]), float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])


def delong_ci(auc: float, variance: float) -> list[float] | None:
    if not np.isfinite(auc) or not np.isfinite(variance):
        return None
    half = Z95 * float(np.sqrt(max(variance, 0.0)))
    return [max(0.0, auc - half), min(1.0, auc + half)]


# --------------------------------------------------------------------------- ROC


def roc_curve(y: Sequence, scores: Sequence) -> dict[str, list]:
    """fpr, tpr and thresholds (null first: above every score), descending thresholds."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(-s, kind="stable")
    ss, ys = s[order], y[order]
    last = np.r_[ss[1:] != ss[:-1], True]  # the last case of each distinct score
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(~ys)[last]
    m, n = int(y.sum()), int((~y).sum())
    tpr = tp / m if m else np.full(len(tp), np.nan)
    fpr = fp / n if n else np.full(len(fp), np.nan)
    return {
        "fpr": [0.0, *map(float, fpr)],
        "tpr": [0.0, *map(float, tpr)],
        "thresholds": [None, *map(float, ss[last])],
    }


def _youden_rows(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of (B, N) resampled labels and scores: Youden threshold, sensitivity,
    specificity (NaN in rows without positives or negatives)."""
    order = np.argsort(-s, axis=1, kind="stable")
    ss = np.take_along_axis(s, order, axis=1)
    ys = np.take_along_axis(y, order, axis=1)
    m = ys.sum(axis=1, keepdims=True).astype(float)
    n = ys.shape[1] - m
    tp = np.cumsum(ys, axis=1)
    fp = np.cumsum(~ys, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        sens = tp / m
        fpr = fp / n
    last = np.ones_like(ss, dtype=bool)
    last[:, :-1] = ss[:, 1:] != ss[:, :-1]
    j = np.where(last, sens - fpr, -np.inf)
    j = np.where(np.isnan(j), -np.inf, j)
    best = np.argmax(j, axis=1)  # the first maximum: the highest threshold
    rows = np.arange(len(ss))
    valid = (m[:, 0] > 0) & (n[:, 0] > 0)
    pick = lambda a: np.where(valid, a[rows, best], np.nan)  # noqa: E731
    return pick(ss), pick(sens), pick(1.0 - fpr)


def _at_threshold(y: np.ndarray, s: np.ndarray, t: float) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and specificity per row at threshold t (NaN where undefined)."""
    call = s >= t
    m = y.sum(axis=-1)
    n = y.shape[-1] - m
    with np.errstate(divide="ignore", invalid="ignore"):
        sens = (call & y).sum(axis=-1) / m
        spec = (~call & ~y).sum(axis=-1) / n
    return np.where(m > 0, sens, np.nan), np.where(n > 0, spec, np.nan)


def _auc_rows(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per row of (B, N) labels and scores (NaN where undefined)."""
    ranks = rankdata(s, axis=1)
    m = y.sum(axis=1).astype(float)
    n = y.shape[1] - m
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * y).sum(axis=1) - m * (m + 1) / 2.0) / (m * n)
    return np.where((m > 0) & (n > 0), auc, np.nan)


def _ci(values: np.ndarray) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return [float(lo), float(hi)]


def _value(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def figures(
    y: np.ndarray, s: np.ndarray, *, operating_threshold: float, bootstrap: int, seed: int
) -> dict[str, dict]:
    """Every classification figure of one set of cases, with its interval."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=float)
    auc, var = delong(y, s)
    sens, spec = _at_threshold(y[None], s[None], operating_threshold)
    yt, ysens, yspec = _youden_rows(y[None], s[None])
    point = {
        "auc": auc,
        "auc_bootstrap": auc,
        "sensitivity": sens[0],
        "specificity": spec[0],
        "youden_threshold": yt[0],
        "youden_sensitivity": ysens[0],
        "youden_specificity": yspec[0],
    }
    intervals: dict[str, list[float] | None] = dict.fromkeys(point)
    if bootstrap and len(y):
        idx = np.random.default_rng(seed).integers(0, len(y), size=(bootstrap, len(y)))
        yb, sb = y[idx], s[idx]
        bs, bp = _at_threshold(yb, sb, operating_threshold)
        bt, bys, byp = _youden_rows(yb, sb)
        for name, vals in (
            ("auc_bootstrap", _auc_rows(yb, sb)),
            ("sensitivity", bs),
            ("specificity", bp),
            ("youden_threshold", bt),
            ("youden_sensitivity", bys),
            ("youden_specificity", byp),
        ):
            intervals[name] = _ci(vals)
    intervals["auc"] = delong_ci(auc, var)
    out = {k: {"value": _value(v), "ci": intervals[k]} for k, v in point.items()}
    out["auc_delong_se"] = {"value": _value(np.sqrt(var)) if np.isfinite(var) else None, "ci": None}
    return out


# --------------------------------------------------------------------------- truth


def case_truth(truth: Truth) -> tuple[list[str], np.ndarray]:
    """The split's cases in the version's order, and whether each is positive."""
    order = list(dict.fromkeys(s.case_id for s in truth.scans))
    label = {}
    for s in truth.scans:
        label.setdefault(s.case_id, s.case_label)
    with_lesion = {les.case_id for les in truth.lesions if not les.excluded}
    positive = np.array(
        [
            label[c] == "positive"
            or (label[c] not in ("positive", "negative") and c in with_lesion)
            for c in order
        ],
        dtype=bool,
    )
    return order, positive


def evaluate_classification(
    truth: Truth,
    scores,
    *,
    operating_threshold: float = 0.5,
    bootstrap: int = 1000,
    seed: int = 0,
    strata: bool = True,
) -> dict:
    """`scores`: CaseScore objects (or a {case_id: probability} mapping) for every case."""
    given = (
        dict(scores)
        if isinstance(scores, dict)
        else {sc.case_id: float(sc.probability) for sc in scores}
    )
    cases, y = case_truth(truth)
    missing = [c for c in cases if c not in given]
    if missing:
        raise ValueError(f"{len(missing)} case(s) have no score: {', '.join(missing[:10])}")
    s = np.array([given[c] for c in cases], dtype=float)
    out_figures = figures(
        y, s, operating_threshold=operating_threshold, bootstrap=bootstrap, seed=seed
    )
    first = {}
    scans_of: dict[str, int] = {}
    for sc in truth.scans:
        first.setdefault(sc.case_id, sc)
        scans_of[sc.case_id] = scans_of.get(sc.case_id, 0) + 1
    lesions_of: dict[str, int] = {}
    for les in truth.lesions:
        if not les.excluded:
            lesions_of[les.case_id] = lesions_of.get(les.case_id, 0) + 1
    out_strata: dict[str, dict] = {}
    if strata:
        for key in SCAN_STRATA:
            levels = np.array([first[c].strata.get(key, "unknown") for c in cases])
            out_strata[key] = {}
            for level in sorted(set(levels.tolist())):
                keep = levels == level
                members = [c for c, k in zip(cases, keep, strict=True) if k]
                out_strata[key][level] = {
                    "scans": sum(scans_of[c] for c in members),
                    "lesions": sum(lesions_of.get(c, 0) for c in members),
                    "figures": figures(
                        y[keep],
                        s[keep],
                        operating_threshold=operating_threshold,
                        bootstrap=bootstrap,
                        seed=seed,
                    ),
                }
    return {
        "kind": "classification",
        "figures": out_figures,
        "curves": {"roc": roc_curve(y, s)},
        "strata": out_strata,
        "conventions": {
            "operating_threshold": float(operating_threshold),
            "bootstrap": {
                "resamples": int(bootstrap),
                "seed": int(seed),
                "unit": "case",
                "interval": "percentile 95%",
            },
            **CONVENTIONS,
        },
        "counts": {
            "scans": len(truth.scans),
            "lesions": sum(1 for les in truth.lesions if not les.excluded),
            "excluded_lesions": sum(1 for les in truth.lesions if les.excluded),
            "marks": len(given),
            "cases": len(cases),
            "positive_cases": int(y.sum()),
        },
        "cases": [
            {"case_id": c, "positive": bool(p), "probability": float(v)}
            for c, p, v in zip(cases, y, s, strict=True)
        ],
    }
