"""Two submissions on the same version: a paired bootstrap of the difference.

Detection: CPM under the version's rule; classification: AUC (Mann-Whitney,
ties half). Both products are scored on the same resamples (same seed, same
draws of scans or cases), the difference a - b is taken per resample, its 95%
interval is the percentile interval and its two-sided p is twice the smaller
share of resamples on either side of 0 (ties at 0 half to each side). For
classification DeLong's paired test is given beside it (p_delong).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qc.evaluation import bootstrap as bs
from qc.evaluation.kit import KIT_CONVENTIONS, KIT_VERSION, dataset_block, submission_block
from qc.evaluation.truth import Truth


def auc_rows(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC per row of (R, N) labels and scores (ties count half;
    NaN where a row has no positive or no negative)."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(scores, dtype=float)
    order = np.argsort(s, axis=1, kind="stable")
    ss = np.take_along_axis(s, order, axis=1)
    yy = np.take_along_axis(y, order, axis=1)
    # midranks per row: for each element, (first + last) / 2 of its tie block, 1-based
    n = s.shape[1]
    idx = np.broadcast_to(np.arange(n), s.shape)
    new_block = np.ones_like(ss, dtype=bool)
    new_block[:, 1:] = ss[:, 1:] != ss[:, :-1]
    first = np.maximum.accumulate(np.where(new_block, idx, 0), axis=1)
    end_block = np.ones_like(ss, dtype=bool)
    end_block[:, :-1] = new_block[:, 1:]
    last = np.minimum.accumulate(np.where(end_block, idx, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = (first + last) / 2.0 + 1.0
    m = yy.sum(axis=1).astype(float)
    k = n - m
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = ((ranks * yy).sum(axis=1) - m * (m + 1) / 2.0) / (m * k)
    return np.where((m > 0) & (k > 0), auc, np.nan)


def _difference(metric: str, a: np.ndarray, b: np.ndarray, has_boot: bool) -> dict[str, Any]:
    d = a - b
    value = float(d[0]) if np.isfinite(d[0]) else None
    ci = None
    p = None
    if has_boot:
        fig = bs.figure(value, d[1:])
        ci = fig["ci"]
        p = bs.two_sided_p(d[1:])
        p = None if not np.isfinite(p) else p
    return {
        "metric": metric,
        "a": float(a[0]) if np.isfinite(a[0]) else None,
        "b": float(b[0]) if np.isfinite(b[0]) else None,
        "value": value,
        "ci": ci,
        "p": p,
    }


def compare(
    truth: Truth, a: Any, b: Any, *, bootstrap: int = 1000, seed: int = 0, product: str = ""
) -> dict[str, Any]:
    """Paired comparison of two parsed submissions of one kind (see the module doc)."""
    if a.kind != b.kind:
        raise ValueError(f"cannot compare a {a.kind} submission with a {b.kind} one")
    has_boot = bootstrap > 0
    extra: dict[str, Any] = {}
    if a.kind == "detection":
        from qc.evaluation.detection import conventions, cpm_samples, rule_in_force

        s_n = len(truth.scans)
        w = np.vstack([np.ones((1, s_n)), bs.weights(s_n, bootstrap, seed)])
        va = cpm_samples(truth, a.detections, w)
        vb = cpm_samples(truth, b.detections, w)
        metric = "cpm"
        rule, threshold, note = rule_in_force(truth)
        conv = conventions(truth, rule, threshold, 0.5, bootstrap, seed, note)
        conv.pop("operating_threshold", None)
        counts = {
            "scans": s_n,
            "lesions": sum(1 for les in truth.lesions if not les.excluded),
            "excluded_lesions": sum(1 for les in truth.lesions if les.excluded),
            "marks": len(a.detections) + len(b.detections),
            "cases": len({s.case_id for s in truth.scans}),
        }
    elif a.kind == "classification":
        from qc.evaluation.classification import CONVENTIONS, case_truth, delong_paired

        cases, y = case_truth(truth)
        sa, sb = _case_scores(cases, a), _case_scores(cases, b)
        idx = np.vstack(
            [np.arange(len(cases))[None, :], bs.resample_indices(len(cases), bootstrap, seed)]
        )
        va, vb = auc_rows(y[idx], sa[idx]), auc_rows(y[idx], sb[idx])
        metric = "auc"
        diff, var = delong_paired(y, sa, sb)
        if var and var > 0 and np.isfinite(var):
            z = abs(diff) / math.sqrt(var)
            extra["p_delong"] = float(math.erfc(z / math.sqrt(2.0)))
        conv = {
            "bootstrap": {
                "resamples": int(bootstrap),
                "seed": int(seed),
                "unit": "case",
                "interval": bs.INTERVAL,
            },
            **CONVENTIONS,
            "declared_rule": truth.rule,
            "declared_threshold": float(truth.threshold),
        }
        counts = {
            "scans": len(truth.scans),
            "lesions": sum(1 for les in truth.lesions if not les.excluded),
            "excluded_lesions": sum(1 for les in truth.lesions if les.excluded),
            "cases": len(cases),
            "positive_cases": int(y.sum()),
        }
    else:
        raise ValueError(f"comparison is for detection (CPM) or classification (AUC), not {a.kind}")
    difference = _difference(metric, va, vb, has_boot) | extra
    conv.update(KIT_CONVENTIONS)
    conv["comparison"] = (
        f"Paired bootstrap: both submissions are scored on the same {bootstrap} resamples "
        f"(seed {seed}); the difference is a - b of {metric.upper()}; its interval is the "
        "percentile 95% interval of the resampled differences and p is twice the smaller "
        "share of resampled differences on either side of 0 (ties at 0 half to each side)."
    )
    return {
        "kit_version": KIT_VERSION,
        "kind": "comparison",
        "product": product,
        "dataset": dataset_block(truth),
        "submission": {"a": submission_block(a), "b": submission_block(b)},
        "conventions": conv,
        "figures": {
            f"{metric}_a": bs.figure(float(va[0]), va[1:] if has_boot else None),
            f"{metric}_b": bs.figure(float(vb[0]), vb[1:] if has_boot else None),
            "difference": {"value": difference["value"], "ci": difference["ci"]},
        },
        "counts": counts,
        "difference": difference,
    }


def _case_scores(cases: list[str], parsed: Any) -> np.ndarray:
    given = {s.case_id: float(s.probability) for s in parsed.scores}
    missing = [c for c in cases if c not in given]
    if missing:
        raise ValueError(f"{len(missing)} case(s) have no score: {', '.join(missing[:10])}")
    return np.asarray([given[c] for c in cases], dtype=float)
