"""The evaluation report's pieces without a database: the plots (qc.evaluation.figures)
render from a result dict with Chinese labels and no missing glyph, only the
plots a result has data for are drawn, and every problem code of the parser has
its own translated message (no raw English from qc reaches a zh-Hans page)."""

from __future__ import annotations

import warnings

from django.utils import translation

from annotation_server.datasets import evaluation_report
from qc.evaluation import figures

CI = {"value": 0.7, "ci": [0.6, 0.8]}


def detection_result() -> dict:
    fp = [0.05 * 2**k for k in range(9)]
    sens = [0.3 + 0.07 * k for k in range(9)]
    return {
        "kind": "detection",
        "figures": {"cpm": CI, **{f"sens_at_{r:g}": CI for r in figures.CPM_RATES}},
        "curves": {
            "froc": {
                "fp_per_scan": fp,
                "sensitivity": sens,
                "ci_low": [s - 0.1 for s in sens],
                "ci_high": [s + 0.05 for s in sens],
                "thresholds": [1 - 0.1 * k for k in range(9)],
            }
        },
        "rules": [
            {"rule": "centre_distance", "threshold": 5.0, "declared": True, "figures": {"cpm": CI}},
            {"rule": "overlap_iou", "threshold": 0.1, "declared": False, "figures": {"cpm": CI}},
        ],
        "strata": {"site": {"S01": {"scans": 2, "lesions": 2, "figures": {"cpm": CI}}}},
    }


def test_detection_plots_render_with_chinese_labels():
    with translation.override("zh-hans"), warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" is a UserWarning
        out = figures.figures(detection_result(), "png", labels=evaluation_report.figure_labels())
    assert sorted(out) == ["froc", "rules", "stratum-site"]
    assert all(png.startswith(b"\x89PNG") for png in out.values())
    svg = figures.figures(detection_result(), "svg")["froc"]
    assert b"<svg" in svg and b"CPM" in svg


def test_a_classification_result_gets_a_roc_plot_and_no_froc():
    result = {
        "kind": "classification",
        "figures": {"auc": {"value": 0.9, "ci": [0.8, 0.97]}},
        "curves": {"roc": {"fpr": [0, 0.2, 1], "tpr": [0, 0.8, 1], "thresholds": [1, 0.5, 0]}},
    }
    out = figures.figures(result, "png")
    assert sorted(out) == ["roc"]
    assert figures.headline(result) == "auc"


def test_the_all_scans_legend_covers_no_stratum_bar():
    result = detection_result()
    result["figures"]["cpm"] = {"value": 0.9, "ci": [0.85, 0.95]}
    levels = {f"S{i:02d}": {"figures": {"cpm": {"value": 1.0, "ci": [0.9, 1.0]}}} for i in range(3)}
    fig = figures.stratum_figure(result, "site", levels, figures.LABELS)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent(renderer)
        bars = [p.get_window_extent(renderer) for p in ax.patches]
        assert len(bars) == 3
        assert not [b for b in bars if legend.overlaps(b)]
    finally:
        figures.plt.close(fig)


def test_every_parser_problem_has_a_translated_message():
    codes = {
        "missing_columns": {"missing": ["coordz"], "expected": ["seriesuid"], "found": []},
        "extra_columns": {"extra": ["x"], "expected": ["seriesuid"], "found": []},
        "unknown_series": {"value": "1.2.3"},
        "unknown_case": {"value": "C1"},
        "not_a_number": {"column": "coordx", "value": "abc"},
        "nan": {"column": "probability", "value": "nan"},
        "probability_range": {"column": "probability", "value": "1.5"},
        "duplicate_row": {"first_line": 2, "series_uid": "1.2.3"},
        "outside_volume": {"x": 1, "y": 2, "z": 3, "series_uid": "1.2.3"},
        "empty": {},
        "encoding": {"byte": 3},
        "too_many_marks": {"series_uid": "1.2.3", "marks": 120, "kept": 100},
        "not_seg": {"file": "a.dcm", "reason": "x"},
        "seg_wrong_series": {"file": "a.dcm", "series_uids": ["9.9"]},
        "seg_geometry": {"file": "a.dcm", "series_uid": "1.2.3", "reason": "matrix"},
        "missing_cases": {"cases": ["C1", "C2"], "count": 2},
    }
    seen = set()
    for code, params in codes.items():
        with translation.override("en"):
            english = evaluation_report.problem_message(code, params)
        with translation.override("zh-hans"):
            chinese = evaluation_report.problem_message(code, params)
        assert english != f"Problem {code}.", code  # not the generic fallback
        assert chinese != english and any("\u4e00" <= ch <= "\u9fff" for ch in chinese), code
        seen.add(english)
    assert len(seen) == len(codes)
    with translation.override("zh-hans"):
        assert "1.2.3" in evaluation_report.problem_message("unknown_series", {"value": "1.2.3"})


def test_an_interval_is_one_unbreakable_unit_in_the_report():
    html = evaluation_report.report_html(detection_result())
    assert html.count('<span class="ci">(0.600–0.800)</span>') >= 2  # both languages
    assert ".ci { white-space: nowrap;" in html  # the offline file carries its own rule
    assert "&lt;span" not in html  # markup, not escaped text
