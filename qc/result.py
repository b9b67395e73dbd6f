"""Result types shared by every rule (plain dataclasses, no framework)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PASS, WARN, FAIL, NA = "pass", "warn", "fail", "n/a"
STATUSES = (PASS, WARN, FAIL, NA)
_SEVERITY = {NA: 0, PASS: 1, WARN: 2, FAIL: 3}


def worst(statuses: list[str]) -> str:
    """The most severe status of ``statuses`` (n/a < pass < warn < fail); pass if empty."""
    out = PASS
    for s in statuses:
        if _SEVERITY[s] > _SEVERITY[out]:
            out = s
    return out


def reader_warnings(results: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the people reading a case are shown of a stored report's results
    (``RuleResult.to_dict()`` rows): each warn or fail as its rule and its English
    and Chinese message, in report order."""
    return [
        {"rule": r["rule"], "en": r["message_en"], "zh": r["message_zh"]}
        for r in results
        if r["status"] in (WARN, FAIL)
    ]


@dataclass(frozen=True)
class RuleResult:
    rule: str
    status: str
    value: float | str | None
    threshold: str
    message_en: str
    message_zh: str

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"bad status {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SeriesReport:
    series_uid: str
    modality: str
    results: list[RuleResult] = field(default_factory=list)
    source: str = ""
    num_files: int = 0

    @property
    def status(self) -> str:
        return worst([r.status for r in self.results])

    def result(self, rule: str) -> RuleResult | None:
        for r in self.results:
            if r.rule == rule:
                return r
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "series_uid": self.series_uid,
            "modality": self.modality,
            "source": self.source,
            "num_files": self.num_files,
            "status": self.status,
            "results": [r.to_dict() for r in self.results],
        }


def result(
    rule: str,
    status: str,
    value: float | str | None,
    threshold: str,
    en: str,
    zh: str,
) -> RuleResult:
    """Shorthand constructor; floats are rounded to 4 significant decimals."""
    if isinstance(value, np.integer):
        value = int(value)
    elif isinstance(value, (float, np.floating)):
        value = round(float(value), 4)
    return RuleResult(rule, status, value, threshold, en, zh)
