"""Scoring a read against a reference: qualification tests and reader performance.

Lesion-level sensitivity (matched reference findings / all reference findings,
over every case), false positives per case, and Cohen's kappa of each attribute
over the matched pairs (scikit-learn). Pairing is `qc.matching.match_pairs`
under the protocol's rule, so a reader is scored the way their reads are
matched.
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


def cohen_kappa(
    first: Sequence[Any], second: Sequence[Any], weights: str | None = None
) -> float | None:
    """Cohen's kappa of two raters' labels; None when undefined (fewer than two
    labelled pairs, or no variation at all so that chance agreement is 1)."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [(_label(a), _label(b)) for a, b in zip(first, second, strict=True) if a is not None]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    if len(pairs) < 2:
        return None
    a, b = zip(*pairs, strict=True)
    if weights is not None:
        try:
            a = tuple(float(v) for v in a)
            b = tuple(float(v) for v in b)
        except ValueError:
            weights = None
    if len(set(a) | set(b)) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = float(cohen_kappa_score(a, b, weights=weights))
    return None if math.isnan(value) else value


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
    kappa = {k: cohen_kappa(a, b, weights[k]) for k, (a, b) in ratings.items()}
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
    )
