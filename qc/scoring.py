"""Scoring a read against a reference: qualification tests and reader performance.

Lesion-level sensitivity (matched reference findings / all reference findings,
over every case), false positives per case, and Cohen's kappa of each attribute
over the matched pairs (scikit-learn). Pairing is `qc.matching.match_pairs`
under the protocol's rule, so a reader is scored the way their reads are
matched.

A kappa that cannot be computed says why (`kappa_reasons`, one code per
attribute): "no_pairs" (no matched finding to compare), "too_few_pairs" (fewer
than two matched findings with the attribute filled in on both sides) or
"no_variation" (every value on both sides was the same, so chance agreement is
1 and kappa is undefined). The misses keep their positions for the people
allowed to see them; `missed_by_type` counts them by finding type, which is
all a reader sees of an attempt they may retake.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qc.matching import Grid, Mark, match_pairs


@dataclass(frozen=True)
class CaseRead:
    """One case: its reference marks, the marks of the read being scored, its grid."""

    case_id: str
    reference: Sequence[Mark]
    read: Sequence[Mark]
    grid: Grid | None = None


@dataclass(frozen=True)
class QualificationScore:
    rule: str
    threshold: float
    cases: int
    reference_findings: int
    true_positives: int
    false_positive_count: int
    sensitivity: float | None
    fp_per_case: float | None
    kappa: dict[str, float | None] = field(default_factory=dict)
    kappa_mean: float | None = None
    misses: list[tuple[str, str, tuple[float, float, float] | None, str]] = field(
        default_factory=list
    )
    false_positives: list[tuple[str, str, tuple[float, float, float] | None]] = field(
        default_factory=list
    )
    per_case: list[dict[str, Any]] = field(default_factory=list)
    kappa_reasons: dict[str, str] = field(default_factory=dict)
    kappa_pairs: dict[str, int] = field(default_factory=dict)

    @property
    def missed_by_type(self) -> dict[str, int]:
        """How many reference findings were missed, by finding type (no positions)."""
        counts: dict[str, int] = {}
        for _case, _id, _centre, finding_type in self.misses:
            counts[finding_type] = counts.get(finding_type, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (tuples become lists, names spelled out)."""
        return {
            "rule": self.rule,
            "threshold": self.threshold,
            "cases": self.cases,
            "reference_findings": self.reference_findings,
            "true_positives": self.true_positives,
            "false_positive_count": self.false_positive_count,
            "sensitivity": self.sensitivity,
            "fp_per_case": self.fp_per_case,
            "kappa": dict(self.kappa),
            "kappa_mean": self.kappa_mean,
            "kappa_reasons": dict(self.kappa_reasons),
            "kappa_pairs": dict(self.kappa_pairs),
            "missed_by_type": self.missed_by_type,
            "misses": [
                {
                    "case_id": c,
                    "reference_id": i,
                    "centre_mm": list(x) if x else None,
                    "finding_type": t,
                }
                for c, i, x, t in self.misses
            ],
            "false_positives": [
                {"case_id": c, "mark_id": i, "centre_mm": list(x) if x else None}
                for c, i, x in self.false_positives
            ],
            "per_case": list(self.per_case),
        }


def _label(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple):
        return "|".join(sorted(map(str, value)))
    return str(value)


KAPPA_NO_PAIRS = "no_pairs"
KAPPA_TOO_FEW_PAIRS = "too_few_pairs"
KAPPA_NO_VARIATION = "no_variation"


def cohen_kappa(
    first: Sequence[Any], second: Sequence[Any], weights: str | None = None
) -> float | None:
    """Cohen's kappa of two raters' labels; None when undefined (fewer than two
    labelled pairs, or no variation at all so that chance agreement is 1)."""
    return kappa_with_reason(first, second, weights)[0]


def kappa_with_reason(
    first: Sequence[Any], second: Sequence[Any], weights: str | None = None
) -> tuple[float | None, str | None, int]:
    """(kappa, why it is None, labelled pairs): the reason is one of the KAPPA_*
    codes when kappa is undefined, else None."""
    from sklearn.metrics import cohen_kappa_score

    if not first:
        return None, KAPPA_NO_PAIRS, 0
    pairs = [(_label(a), _label(b)) for a, b in zip(first, second, strict=True) if a is not None]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if len(pairs) < 2:
        return None, KAPPA_TOO_FEW_PAIRS, len(pairs)
    a, b = zip(*pairs, strict=True)
    if weights is not None:
        try:
            a = tuple(float(v) for v in a)
            b = tuple(float(v) for v in b)
        except ValueError:
            weights = None
    if len(set(a) | set(b)) < 2:
        return None, KAPPA_NO_VARIATION, len(pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(cohen_kappa_score(a, b, weights=weights))
    if math.isnan(value):
        return None, KAPPA_NO_VARIATION, len(pairs)
    return value, None, len(pairs)


def score_qualification(
    cases: Sequence[CaseRead],
    rule: str,
    threshold: float,
    attributes: Sequence[str] | Mapping[str, str | None] = (),
) -> QualificationScore:
    """Score one read of each case against its reference.

    `attributes` names the attributes whose agreement is measured; a mapping
    gives kappa weights per attribute (None, "linear" or "quadratic", the
    latter two for ordinal scales).
    """
    weights = dict(attributes) if isinstance(attributes, Mapping) else dict.fromkeys(attributes)
    ref_total = tp = fp = 0
    misses: list = []
    false_positives: list = []
    per_case: list[dict[str, Any]] = []
    ratings: dict[str, tuple[list, list]] = {k: ([], []) for k in weights}
    for case in cases:
        m = match_pairs(case.reference, case.read, rule, threshold, case.grid)
        ref_total += len(case.reference)
        tp += len(m.pairs)
        fp += len(m.false_positives)
        misses.extend((case.case_id, r.id, r.centre_mm, r.finding_type) for r in m.missed)
        false_positives.extend((case.case_id, c.id, c.centre_mm) for c in m.false_positives)
        per_case.append(
            {
                "case_id": case.case_id,
                "reference": len(case.reference),
                "matched": len(m.pairs),
                "false_positives": len(m.false_positives),
            }
        )
        for ref, cand in m.pairs:
            for key, (ref_values, read_values) in ratings.items():
                ref_values.append(ref.attributes.get(key))
                read_values.append(cand.attributes.get(key))
    kappa: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    counted: dict[str, int] = {}
    for key, (a, b) in ratings.items():
        kappa[key], why, counted[key] = kappa_with_reason(a, b, weights[key])
        if why is not None:
            reasons[key] = why
    defined = [v for v in kappa.values() if v is not None]
    return QualificationScore(
        rule=rule,
        threshold=float(threshold),
        cases=len(cases),
        reference_findings=ref_total,
        true_positives=tp,
        false_positive_count=fp,
        sensitivity=tp / ref_total if ref_total else None,
        fp_per_case=fp / len(cases) if cases else None,
        kappa=kappa,
        kappa_mean=sum(defined) / len(defined) if defined else None,
        misses=misses,
        false_positives=false_positives,
        per_case=per_case,
        kappa_reasons=reasons,
        kappa_pairs=counted,
    )
