"""Case-level disagreement on ordinal grades (e.g. the diabetic retinopathy grade).

Plain data in, plain data out. Every read gives each ordinal case field either a
value of its scale (an int), an answer outside the scale (a string such as
"ungradable"), or nothing. The reads of a field disagree, and the field goes to
arbitration, when:

- one read answers outside the scale and another answers on it, or two reads
  give different outside-scale answers ("ungradable" vs grade 2 always
  disagrees, whatever the rule); a read that gave nothing against one that
  answered also disagrees (as for every other case-level field);
- rule "difference": the highest and lowest scale values differ by at least N
  (N = 1: any difference);
- rule "referable": the reads fall on both sides of the field's referable
  threshold (a value >= referable_from is referable). A field without a
  threshold falls back to the difference rule.

When the reads agree under the rule, the consensus answer is the shared
outside-scale answer, or the upper median of the scale values (for two reads,
the more severe grade; for three, the middle one).

A single-choice category with answers outside its scale (diabetic macular
oedema: absent / present, or "ungradable") follows the same outside-scale rule
(`category_dispute`): an off-scale answer against an on-scale one, or two
different off-scale answers, is "outside_scale"; two different categories are
"difference" whatever the grade rule (a binary field has no smaller step); a
missing answer against a given one is "missing". Its consensus is the shared
answer.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

DIFFERENCE = "difference"
REFERABLE = "referable"
RULES = (DIFFERENCE, REFERABLE)


@dataclass(frozen=True)
class GradeRule:
    rule: str = DIFFERENCE
    difference: int = 1

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"grade rule {self.rule!r} is not one of {', '.join(RULES)}")
        if self.difference < 1:
            raise ValueError("the grade difference is at least 1")


def _on_scale(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def grade_dispute(
    values: Mapping[str, Any], rule: GradeRule, referable_from: int | None = None
) -> str | None:
    """Why the reads' answers to one ordinal field disagree, or None when they agree.
    `values` maps read -> answer. Reasons: "missing", "outside_scale",
    "difference", "referable"."""
    answers = list(values.values())
    given = [v for v in answers if v is not None and v != ""]
    if not given:
        return None
    if len(given) != len(answers):
        return "missing"
    scale = [v for v in given if _on_scale(v)]
    other = {str(v) for v in given if not _on_scale(v)}
    if other and (scale or len(other) > 1):
        return "outside_scale"
    if not scale:
        return None
    if rule.rule == REFERABLE and referable_from is not None:
        sides = {v >= referable_from for v in scale}
        return "referable" if len(sides) > 1 else None
    return "difference" if max(scale) - min(scale) >= rule.difference else None


def agreed_grade(values: Mapping[str, Any]) -> Any:
    """The consensus answer of reads that agree under the rule (see the module)."""
    given = [v for v in values.values() if v is not None and v != ""]
    if not given:
        return None
    scale = [v for v in given if _on_scale(v)]
    if not scale:
        return given[0]
    return statistics.median_high(scale)


def category_dispute(values: Mapping[str, Any], outside: Collection[str]) -> str | None:
    """Why the reads' answers to one single-choice category field with answers
    outside its scale (`outside`, e.g. {"ungradable"}) disagree, or None when
    they all gave the same answer (see the module). Reasons: "missing",
    "outside_scale", "difference"."""
    answers = list(values.values())
    given = [v for v in answers if v is not None and v != ""]
    if not given:
        return None
    if len(given) != len(answers):
        return "missing"
    off = {str(v) for v in given if v in outside}
    on = {str(v) for v in given if v not in outside}
    if off and (on or len(off) > 1):
        return "outside_scale"
    return "difference" if len(on) > 1 else None
