"""Run the registry's rules on a series under a profile."""

from __future__ import annotations

from .profile import Profile
from .registry import RULES
from .result import WARN, SeriesReport, result
from .series import SeriesInput


def run_series(
    series: SeriesInput, profile: Profile | None = None, *, strict: bool = False
) -> SeriesReport:
    """Every applicable, wanted rule's result; a crashing rule becomes a warn (or raises
    when ``strict``). Without a profile, ``Profile.default_for(series.modality)``."""
    prof = profile or Profile.default_for(series.modality)
    report = SeriesReport(
        series.series_uid, series.modality, source=series.source, num_files=len(series.headers)
    )
    for key, rule in RULES.items():
        if not prof.wants(key) or not rule.applies(series.modality):
            continue
        try:
            res = rule.fn(series, prof)
        except Exception as exc:
            if strict:
                raise
            res = result(
                key,
                WARN,
                None,
                "",
                f"Rule could not run: {exc.__class__.__name__}: {exc}",
                f"规则无法运行：{exc.__class__.__name__}: {exc}",
            )
        report.results.append(res)
    return report
