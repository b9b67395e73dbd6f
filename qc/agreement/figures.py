"""Plots of an agreement report (matplotlib, Agg backend): PNG and SVG bytes.

`figures(report, fmt="png")` returns {name: bytes} for every plot the report
has data for: the pairwise reader heat map, the per-reader detection plot
(sensitivity and F1 with their intervals, false positives per case, the flag
threshold when set), the LIDC table, one Bland-Altman plot per measured
number and the weekly drift. Titles and axis labels come from `labels`
(already translated by the caller), so this module stays framework-free.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Chinese titles and labels: matplotlib falls back glyph by glyph along this list
# (DejaVu has no CJK; the WenQuanYi and Noto CJK Debian fonts do).
# Only installed families are listed: matplotlib logs a warning for every missing
# one on every text it draws.
FONT_FAMILIES = ("DejaVu Sans", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC")


def _installed_fonts() -> list[str]:
    from matplotlib import font_manager

    have = {f.name for f in font_manager.fontManager.ttflist}
    return [name for name in FONT_FAMILIES if name in have] + ["sans-serif"]


plt.rcParams["font.family"] = _installed_fonts()

LABELS = {
    "heatmap": "Pairwise detection agreement between readers",
    "detection": "Readers against the reference standard",
    "sensitivity": "sensitivity",
    "f1": "F1",
    "fp_per_case": "false positives per case",
    "threshold": "flag threshold",
    "lidc": "Lesions marked by k readers",
    "readers_marking": "readers marking",
    "lesions": "lesions",
    "bland_altman": "Bland-Altman",
    "mean": "mean of two readers",
    "difference": "difference (a - b)",
    "bias": "bias",
    "loa": "limits of agreement",
    "weekly": "Agreement per week",
    "week": "week",
    "detection_agreement": "detection agreement",
    "attribute_alpha": "attribute alpha",
}


def save_figure(fig, fmt: str) -> bytes:
    """The figure as PNG or SVG bytes (SVG without a date: reproducible); closes it."""
    buf = io.BytesIO()
    fig.savefig(
        buf,
        format=fmt,
        dpi=110,
        bbox_inches="tight",
        metadata={"Date": None} if fmt == "svg" else None,
    )
    plt.close(fig)
    return buf.getvalue()


def unit_axis(ax, *, low: float = 0.0, headroom: float = 0.2, legend_columns: int = 1) -> None:
    """A y axis for values in [low, 1] with ticks up to 1.0 and empty headroom above
    it, where the legend goes: it then covers no bar, point or interval."""
    ax.set_ylim(low, 1.0 + headroom)
    ax.set_yticks([t for t in np.arange(-1.0, 1.01, 0.2) if t >= low - 1e-9])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper center", ncol=legend_columns, frameon=False)


def _v(e) -> float:
    return np.nan if not e or e.get("value") is None else float(e["value"])


def _err(e) -> tuple[float, float]:
    if not e or e.get("value") is None or e.get("low") is None:
        return (0.0, 0.0)
    return (max(e["value"] - e["low"], 0.0), max(e["high"] - e["value"], 0.0))


def heatmap(report: dict, labels: Mapping[str, str], fmt: str):
    names = [r["label"] for r in report["readers"]]
    matrix = np.asarray(
        [[np.nan if v is None else v for v in row] for row in report["detection"]["matrix"]],
        dtype=float,
    )
    if len(names) < 2:
        return None
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(names), 1 + 0.6 * len(names)))
    im = ax.imshow(matrix, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(matrix[i, j]):
                colour = "black" if matrix[i, j] > 0.6 else "white"
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", color=colour)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(labels["heatmap"])
    return save_figure(fig, fmt)


def detection(report: dict, labels: Mapping[str, str], fmt: str, threshold: float | None):
    fig = detection_figure(report, labels, threshold)
    return None if fig is None else save_figure(fig, fmt)


def detection_figure(report: dict, labels: Mapping[str, str], threshold: float | None):
    """Sensitivity and F1 per reader beside false positives per case (a figure, or
    None without a reference). The legend sits in the headroom above 1.0, clear
    of the bars; a count axis starts at 0 (no negative false positives when every
    reader has none)."""
    rows = report["detection"]["per_reader"]
    if not report["detection"]["reference_cases"] or not rows:
        return None
    names = {r["id"]: r["label"] for r in report["readers"]}
    x = np.arange(len(rows))
    fig, (ax, ax2) = plt.subplots(
        1, 2, figsize=(max(7.5, 3 + 1.4 * len(rows)), 3.6), layout="constrained"
    )
    for offset, key in ((-0.18, "sensitivity"), (0.18, "f1")):
        values = [_v(r[key]) for r in rows]
        errs = np.asarray([_err(r[key]) for r in rows]).T
        ax.bar(x + offset, values, 0.34, yerr=errs, capsize=3, label=labels[key])
    if threshold is not None:
        ax.axhline(threshold, color="crimson", linestyle="--", label=labels["threshold"])
    ax.set_xticks(x, [names.get(r["reader"], r["reader"]) for r in rows], rotation=30, ha="right")
    unit_axis(ax, headroom=0.45)  # up to three legend rows
    ax.set_title(labels["detection"], fontsize=10)
    fps = [_v(r["fp_per_case"]) for r in rows]
    errs = np.asarray([_err(r["fp_per_case"]) for r in rows]).T
    ax2.bar(x, fps, 0.5, yerr=errs, capsize=3, color="tab:gray")
    ax2.set_xticks(x, [names.get(r["reader"], r["reader"]) for r in rows], rotation=30, ha="right")
    tops = [v + e for v, e in zip(fps, errs[1], strict=True) if not np.isnan(v)]
    ax2.set_ylim(0, max([1.0, *(t * 1.15 for t in tops)]))
    ax2.set_title(labels["fp_per_case"], fontsize=10)
    return fig


def lidc(report: dict, labels: Mapping[str, str], fmt: str):
    rows = report["detection"]["lidc_table"]
    if not any(r["lesions"] for r in rows):
        return None
    fig, ax = plt.subplots(figsize=(4.2, 3))
    ax.bar([r["readers"] for r in rows], [r["lesions"] for r in rows], color="tab:blue")
    ax.set_xlabel(labels["readers_marking"])
    ax.set_ylabel(labels["lesions"])
    ax.set_xticks([r["readers"] for r in rows])
    ax.set_title(labels["lidc"])
    return save_figure(fig, fmt)


def bland_altman(block: dict, labels: Mapping[str, str], fmt: str):
    points = np.asarray(block.get("points") or [], dtype=float).reshape(-1, 2)
    pooled = block.get("bland_altman_pooled")
    if not len(points) or not pooled:
        return None
    fig, ax = plt.subplots(figsize=(4.8, 3.4))
    ax.scatter(points[:, 0], points[:, 1], s=8, alpha=0.5)
    bias = _v(pooled["bias"])
    ax.axhline(bias, color="black", label=f"{labels['bias']} {bias:.2f}")
    for key in ("loa_low", "loa_high"):
        ax.axhline(_v(pooled[key]), color="crimson", linestyle="--")
    ax.plot([], [], color="crimson", linestyle="--", label=labels["loa"])
    unit = f" ({block['unit']})" if block.get("unit") else ""
    ax.set_xlabel(labels["mean"] + unit)
    ax.set_ylabel(labels["difference"] + unit)
    ax.legend(fontsize=8)
    ax.set_title(f"{labels['bland_altman']}: {block['label']}")
    return save_figure(fig, fmt)


def weekly(report: dict, labels: Mapping[str, str], fmt: str):
    fig = weekly_figure(report, labels)
    return None if fig is None else save_figure(fig, fmt)


def weekly_figure(report: dict, labels: Mapping[str, str]):
    """Detection agreement and attribute alpha per week (a figure, or None without
    weeks). The axis reaches down to any negative alpha (worse than chance is a
    finding, not something to clip) and keeps headroom above 1.0 for the legend."""
    rows = report["weekly"]
    if len(rows) < 1:
        return None
    fig, ax = plt.subplots(figsize=(max(4.5, 0.6 * len(rows)), 3.2))
    x = np.arange(len(rows))
    lowest = 0.0
    for key in ("detection_agreement", "attribute_alpha"):
        values = [_v(r.get(key)) for r in rows]
        if all(np.isnan(values)):
            continue
        errs = np.asarray([_err(r.get(key)) for r in rows]).T
        ax.errorbar(x, values, yerr=errs, marker="o", capsize=3, label=labels[key])
        bottoms = [v - e for v, e in zip(values, errs[0], strict=True) if not np.isnan(v)]
        lowest = min([lowest, *bottoms])
    ax.set_xticks(x, [r["week"] for r in rows], rotation=30, ha="right")
    ax.set_xlabel(labels["week"])
    unit_axis(ax, low=-0.05 if lowest >= 0 else lowest - 0.1, headroom=0.3, legend_columns=2)
    ax.set_title(labels["weekly"])
    return fig


def figures(
    report: dict,
    fmt: str = "png",
    labels: Mapping[str, str] | None = None,
    threshold: float | None = None,
) -> dict[str, bytes]:
    """{name: image bytes} in `fmt` ("png" or "svg")."""
    if fmt not in ("png", "svg"):
        raise ValueError("fmt is png or svg")
    lab = {**LABELS, **(labels or {})}
    out = {
        "heatmap": heatmap(report, lab, fmt),
        "detection": detection(report, lab, fmt, threshold),
        "lidc": lidc(report, lab, fmt),
        "weekly": weekly(report, lab, fmt),
    }
    for block in report["attributes"] + report["case_labels"]:
        if block["kind"] == "number":
            out[f"bland-altman-{block['name'].replace('.', '-')}"] = bland_altman(block, lab, fmt)
    return {k: v for k, v in out.items() if v is not None}
