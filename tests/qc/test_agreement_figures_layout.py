"""The detection figure's layout: its legend never covers a bar or leaves its
axes, and the false-positive count axis never shows negative counts."""

from __future__ import annotations

import pytest

from qc.agreement import figures


def _report(readers: int, sensitivity: float = 1.0, fp: float = 0.0) -> dict:
    def e(v):
        return {"value": v, "low": max(v - 0.1, 0.0), "high": v}

    return {
        "readers": [{"id": str(i), "label": f"RD{i:03d}"} for i in range(readers)],
        "detection": {
            "reference_cases": 4,
            "per_reader": [
                {
                    "reader": str(i),
                    "sensitivity": e(sensitivity),
                    "f1": e(sensitivity),
                    "fp_per_case": {"value": fp, "low": 0.0, "high": fp + 0.5 * (fp > 0)},
                }
                for i in range(readers)
            ],
        },
    }


@pytest.mark.parametrize("readers", [1, 3, 8])
@pytest.mark.parametrize("labels", [figures.LABELS, {**figures.LABELS, "sensitivity": "灵敏度"}])
def test_the_legend_covers_no_bar_and_stays_in_its_axes(readers, labels):
    fig = figures.detection_figure(_report(readers), labels, threshold=0.8)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax, ax2 = fig.axes
        legend = ax.get_legend().get_window_extent(renderer)
        bars = [p.get_window_extent(renderer) for p in ax.patches]
        assert len(bars) == 2 * readers
        assert not [b for b in bars if legend.overlaps(b)]
        inside = ax.get_window_extent(renderer)
        assert inside.x0 <= legend.x0 and legend.x1 <= inside.x1 + 1
        assert not legend.overlaps(ax2.get_window_extent(renderer))
        # the two titles, and each panel's labels, keep apart
        titles = [a.title.get_window_extent(renderer) for a in (ax, ax2)]
        assert not titles[0].overlaps(titles[1])
        assert ax.get_tightbbox(renderer).x1 <= ax2.get_tightbbox(renderer).x0
    finally:
        figures.plt.close(fig)


def test_false_positives_are_counted_from_zero():
    fig = figures.detection_figure(_report(3, fp=0.0), figures.LABELS, threshold=None)
    try:
        assert fig.axes[1].get_ylim() == (0.0, 1.0)  # none at all: 0 to 1, not ±0.04
    finally:
        figures.plt.close(fig)
    fig = figures.detection_figure(_report(3, fp=2.0), figures.LABELS, threshold=None)
    try:
        low, high = fig.axes[1].get_ylim()
        assert low == 0.0 and high >= 2.5  # the bar and its interval's top fit
    finally:
        figures.plt.close(fig)


def _weeks(alphas: list[float]) -> dict:
    return {
        "weekly": [
            {
                "week": f"2026-W{40 + i}",
                "detection_agreement": {"value": 1.0, "low": 0.8, "high": 1.0},
                "attribute_alpha": {"value": a, "low": a - 0.2, "high": min(a + 0.2, 1.0)},
            }
            for i, a in enumerate(alphas)
        ]
    }


def test_a_week_worse_than_chance_is_drawn_not_clipped():
    fig = figures.weekly_figure(_weeks([0.9, -0.4, 0.6]), figures.LABELS)
    try:
        low, high = fig.axes[0].get_ylim()
        assert low < -0.6  # the -0.4 week and its interval's bottom (-0.6) are on the axis
        assert high > 1.0
    finally:
        figures.plt.close(fig)
    fig = figures.weekly_figure(_weeks([0.9, 0.7]), figures.LABELS)
    try:
        assert fig.axes[0].get_ylim()[0] == -0.05  # no negative week: the usual axis
    finally:
        figures.plt.close(fig)


def test_the_weekly_legend_covers_no_point():
    fig = figures.weekly_figure(_weeks([1.0, 0.95, 1.0, 0.9]), figures.LABELS)
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
        points = [ax.transData.transform(xy) for line in ax.lines for xy in line.get_xydata()]
        assert points
        assert not [p for p in points if legend.contains(*p)]
    finally:
        figures.plt.close(fig)
