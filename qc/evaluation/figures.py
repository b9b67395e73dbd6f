"""Plots of an evaluation result (matplotlib, Agg backend): PNG and SVG bytes.

`figures(result, fmt="png", labels=None)` returns {name: bytes} for every plot
the result has data for:

- "froc": the FROC curve (sensitivity against false positives per scan, log
  axis) with its bootstrap 95% band, the seven CPM operating points marked;
- "roc": the ROC curve with the chance diagonal, AUC in the legend (DR
  grading: the per-image and the per-patient curve, each with its AUC);
- "confusion": DR grading's reference-against-product grade matrix (counts);
- "rules": the headline figure under every match rule, the declared one marked;
- "stratum-<name>": one bar chart per stratum (site, manufacturer, slice
  thickness, finding type, size, agreement), the headline figure per level with
  its 95% interval and the overall value as a line.

The headline figure is CPM for detection, AUC for classification and Dice for
segmentation. Titles and axis labels come from `labels` (already translated by
the caller: the app passes gettext strings), so this module stays framework-free.
The font list is qc.agreement.figures': Chinese labels render with a CJK font.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# The agreement plots' font list (rcParams["font.family"]: DejaVu, then the CJK
# fonts installed) and their PNG/SVG writer.
from qc.agreement.figures import save_figure as _save  # noqa: E402
from qc.agreement.figures import unit_axis  # noqa: E402

CPM_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)

HEADLINE = {
    "detection": "cpm",
    "classification": "auc",
    "segmentation": "dice",
    "dr_grading": "auc",
    "comparison": "cpm",
}

LABELS = {
    "froc": "FROC curve",
    "fp_per_scan": "false positives per scan",
    "sensitivity": "sensitivity",
    "ci_band": "confidence band (95%)",
    "cpm_points": "CPM operating points",
    "roc": "ROC curve",
    "fpr": "1 - specificity",
    "tpr": "sensitivity",
    "chance": "chance",
    "rules": "Figures under every match rule",
    "declared": "declared rule",
    "overall": "all scans",
    "stratum": "By stratum",
    "cpm": "CPM",
    "auc": "AUC",
    "dice": "Dice",
    "site": "site",
    "manufacturer": "manufacturer",
    "slice_thickness": "slice thickness",
    "finding_type": "finding type",
    "size": "size",
    "agreement": "reader agreement",
    "laterality": "laterality",
    "image_roc": "per image",
    "patient_roc": "per patient",
    "confusion": "DR grade: reference against product",
    "reference_grade": "reference grade",
    "predicted_grade": "product grade",
    "ungradable": "ungradable",
    "not_given": "not given",
    "dmo_roc": "Macular oedema: ROC curve",
}


def headline(result: Mapping) -> str:
    """The figure the report leads with for this result's kind."""
    return HEADLINE.get(str(result.get("kind")), "cpm")


def _value(entry) -> float:
    if not entry or entry.get("value") is None:
        return np.nan
    return float(entry["value"])


def _errors(entries) -> np.ndarray:
    """2 x n asymmetric error bars (zero where an interval is missing)."""
    out = np.zeros((2, len(entries)))
    for i, e in enumerate(entries):
        v, ci = _value(e), (e or {}).get("ci")
        if ci and ci[0] is not None and ci[1] is not None and np.isfinite(v):
            out[0, i] = max(v - float(ci[0]), 0.0)
            out[1, i] = max(float(ci[1]) - v, 0.0)
    return out


def _floats(values) -> np.ndarray:
    return np.asarray([np.nan if v is None else float(v) for v in values or []], dtype=float)


def froc(result: Mapping, labels: Mapping[str, str], fmt: str) -> bytes | None:
    curve = (result.get("curves") or {}).get("froc")
    if not curve:
        return None
    x, y = _floats(curve.get("fp_per_scan")), _floats(curve.get("sensitivity"))
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0)
    if not keep.any():
        return None
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    low, high = _floats(curve.get("ci_low")), _floats(curve.get("ci_high"))
    if len(low) == len(x) and len(high) == len(x):
        band = keep & np.isfinite(low) & np.isfinite(high)
        if band.any():
            ax.fill_between(
                x[band],
                low[band],
                high[band],
                step="post",
                alpha=0.25,
                color="tab:blue",
                label=labels["ci_band"],
            )
    order = np.argsort(x[keep], kind="stable")
    ax.step(x[keep][order], y[keep][order], where="post", color="tab:blue", label=labels["froc"])
    figs = result.get("figures") or {}
    points = [(r, figs.get(f"sens_at_{r:g}")) for r in CPM_RATES]
    px = [r for r, e in points if e and e.get("value") is not None]
    py = [float(e["value"]) for _, e in points if e and e.get("value") is not None]
    if px:
        ax.plot(px, py, "o", color="crimson", label=labels["cpm_points"])
    ax.set_xscale("log", base=2)
    ax.set_xlim(1 / 16, 16)
    ax.set_xticks(CPM_RATES, ["1/8", "1/4", "1/2", "1", "2", "4", "8"])
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(labels["fp_per_scan"])
    ax.set_ylabel(labels["sensitivity"])
    cpm = _value(figs.get("cpm"))
    title = labels["froc"] + (f" (CPM {cpm:.3f})" if np.isfinite(cpm) else "")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, fmt)


def _points(curve: Mapping | None) -> tuple | None:
    """The finite (fpr, tpr) points of a stored ROC curve, or None."""
    if not curve:
        return None
    x, y = _floats(curve.get("fpr")), _floats(curve.get("tpr"))
    keep = np.isfinite(x) & np.isfinite(y)
    return (x[keep], y[keep]) if keep.any() else None


def _with_auc(name: str, auc) -> str:
    value = _value(auc)
    return name + (f" (AUC {value:.3f})" if np.isfinite(value) else "")


def _roc_figure(lines: list[tuple], labels: Mapping[str, str], title: str, fmt: str) -> bytes:
    """ROC curves [(fpr, tpr, colour, legend)] over the chance diagonal."""
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for x, y, colour, name in lines:
        ax.plot(x, y, color=colour, label=name)
    ax.plot([0, 1], [0, 1], linestyle="--", color="tab:gray", label=labels["chance"])
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(labels["fpr"])
    ax.set_ylabel(labels["tpr"])
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, fmt)


def roc(result: Mapping, labels: Mapping[str, str], fmt: str) -> bytes | None:
    """Per image, and per patient where the result has that curve too."""
    curves, figs = result.get("curves") or {}, result.get("figures") or {}
    image = _points(curves.get("roc"))
    if image is None:
        return None
    patient = curves.get("patient_roc")
    first = labels["image_roc"] if patient else labels["roc"]
    lines = [(*image, "tab:blue", _with_auc(first, figs.get("auc")))]
    per_patient = _points(patient)
    if per_patient is not None:
        legend = _with_auc(labels["patient_roc"], figs.get("patient_auc"))
        lines.append((*per_patient, "tab:orange", legend))
    return _roc_figure(lines, labels, labels["roc"], fmt)


def confusion(result: Mapping, labels: Mapping[str, str], fmt: str) -> bytes | None:
    matrix = ((result.get("grading") or {}).get("confusion_matrix")) or {}
    counts = np.asarray(matrix.get("counts") or [], dtype=float)
    if counts.ndim != 2 or not counts.size or not counts.sum():
        return None
    names = {"ungradable": labels["ungradable"], "not_given": labels["not_given"]}
    rows = [names.get(r, r) for r in matrix.get("rows") or []]
    cols = [names.get(c, c) for c in matrix.get("columns") or []]
    fig, ax = plt.subplots(figsize=(1.6 + 0.62 * len(cols), 1.4 + 0.5 * len(rows)))
    ax.imshow(counts, cmap="Blues", aspect="auto")
    top = counts.max()
    for (i, j), n in np.ndenumerate(counts):
        ax.text(
            j,
            i,
            f"{int(n)}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if n > top / 2 else "black",
        )
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(labels["predicted_grade"])
    ax.set_ylabel(labels["reference_grade"])
    ax.set_title(labels["confusion"], fontsize=9)
    return _save(fig, fmt)


def rules(result: Mapping, labels: Mapping[str, str], fmt: str) -> bytes | None:
    rows = result.get("rules") or []
    name = headline(result)
    if len(rows) < 2:
        return None
    entries = [(r.get("figures") or {}).get(name) for r in rows]
    values = [_value(e) for e in entries]
    if not np.isfinite(values).any():
        return None
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * len(rows), 3.4))
    x = np.arange(len(rows))
    colours = ["crimson" if r.get("declared") else "tab:blue" for r in rows]
    ax.bar(x, values, 0.6, yerr=_errors(entries), capsize=3, color=colours)
    ticks = [
        f"{r['rule']} {r.get('threshold', ''):g}" if r.get("threshold") is not None else r["rule"]
        for r in rows
    ]
    ticks = [
        t + ("\n" + labels["declared"] if r.get("declared") else "")
        for t, r in zip(ticks, rows, strict=True)
    ]
    ax.set_xticks(x, ticks, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(labels.get(name, name))
    ax.set_title(labels["rules"])
    return _save(fig, fmt)


def stratum(
    result: Mapping, key: str, levels: Mapping, labels: Mapping[str, str], fmt: str
) -> bytes | None:
    fig = stratum_figure(result, key, levels, labels)
    return None if fig is None else _save(fig, fmt)


def stratum_figure(result: Mapping, key: str, levels: Mapping, labels: Mapping[str, str]):
    """The headline figure per level of one stratum beside its value over all
    scans (a figure, or None without values). The "all scans" legend sits in the
    headroom above 1.0, clear of the bars."""
    name = headline(result)
    items = sorted(levels.items())
    entries = [(level.get("figures") or {}).get(name) for _, level in items]
    values = [_value(e) for e in entries]
    if not items or not np.isfinite(values).any():
        return None
    fig, ax = plt.subplots(figsize=(2.2 + 0.9 * len(items), 3.2))
    x = np.arange(len(items))
    ax.bar(x, values, 0.6, yerr=_errors(entries), capsize=3, color="tab:blue")
    overall = _value((result.get("figures") or {}).get(name))
    if np.isfinite(overall):
        ax.axhline(overall, color="crimson", linestyle="--", label=labels["overall"])
    ax.set_xticks(x, [str(k) for k, _ in items], rotation=30, ha="right", fontsize=8)
    unit_axis(ax)
    ax.set_ylabel(labels.get(name, name))
    ax.set_title(f"{labels['stratum']}: {labels.get(key, key)}")
    return fig


def dmo_roc(result: Mapping, labels: Mapping[str, str], fmt: str) -> bytes | None:
    """DR grading with a DMO column: the macular oedema ROC curve, dmo_auc in the legend."""
    curves, figs = result.get("curves") or {}, result.get("figures") or {}
    points = _points(curves.get("dmo_roc"))
    if points is None:
        return None
    legend = _with_auc(labels["image_roc"], figs.get("dmo_auc"))
    return _roc_figure([(*points, "tab:green", legend)], labels, labels["dmo_roc"], fmt)


def figures(
    result: Mapping, fmt: str = "png", labels: Mapping[str, str] | None = None
) -> dict[str, bytes]:
    """{name: image bytes} in `fmt` ("png" or "svg"), in a stable order."""
    if fmt not in ("png", "svg"):
        raise ValueError("fmt is png or svg")
    lab = {**LABELS, **(labels or {})}
    out: dict[str, bytes | None] = {
        "froc": froc(result, lab, fmt),
        "roc": roc(result, lab, fmt),
        "dmo_roc": dmo_roc(result, lab, fmt),
        "confusion": confusion(result, lab, fmt),
        "rules": rules(result, lab, fmt),
    }
    for key, levels in (result.get("strata") or {}).items():
        out[f"stratum-{key}"] = stratum(result, key, levels or {}, lab, fmt)
    return {k: v for k, v in out.items() if v is not None}
