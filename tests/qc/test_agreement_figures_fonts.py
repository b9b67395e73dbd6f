"""Chinese plot labels render with a CJK font (no missing-glyph boxes)."""

from __future__ import annotations

import warnings

from qc.agreement import figures


def test_chinese_labels_find_their_glyphs():
    report = {
        "detection": {"matrix": [[1.0, 0.8], [0.8, 1.0]]},
        "readers": [{"id": "1", "label": "阅片医师甲"}, {"id": "2", "label": "阅片医师乙"}],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" is a UserWarning
        out = figures.heatmap(report, {**figures.LABELS, "heatmap": "阅片医师两两一致性"}, "png")
    assert out.startswith(b"\x89PNG")


def test_only_installed_fonts_are_asked_for(caplog):
    """A missing family in the list makes matplotlib log a warning per text drawn
    (thousands in one demo run)."""
    import logging

    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    assert all(name in have or name == "sans-serif" for name in figures.plt.rcParams["font.family"])
    report = {
        "detection": {"matrix": [[1.0, 0.8], [0.8, 1.0]]},
        "readers": [{"id": "1", "label": "阅片医师甲"}, {"id": "2", "label": "阅片医师乙"}],
    }
    with caplog.at_level(logging.WARNING, logger="matplotlib.font_manager"):
        figures.heatmap(report, figures.LABELS, "png")
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]
