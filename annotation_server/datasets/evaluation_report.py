"""What an evaluation result looks like to people: translated labels, the
parser's problems in the reader's language, figures.csv, the result manifest,
and the report (the page's body and the downloadable report.html).

The result dict (qc/evaluation/result.schema.json) is in English and machine
form; nothing of qc's English reaches a zh-Hans page: problems are rendered from
their stable `code` and `params` with gettext messages here, figure names and
strata through FIGURE_LABELS / STRATUM_LABELS. Convention texts are the kit's
plain-English statements of method; they are shown as they are (their keys
translated) and also stated in both languages' sections of report.html.

report.html is bilingual as two full renderings of the same report, Chinese
first then English, each with its own plots; a language switch at the top
works without JavaScript (anchors #zh / #en and CSS :target). It is one file:
CSS inline, plots embedded as base64 PNG, no external request, so it opens
offline from disk.
"""

from __future__ import annotations

import base64
import io
import json

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from export.tables import csv_writer

FIGURE_LABELS = {
    "cpm": gettext_lazy("CPM (mean sensitivity at 1/8-8 FP per scan)"),
    "froc_score_monai": gettext_lazy("FROC score (MONAI, 0.25-8 FP per scan)"),
    "froc_auc_metrics_reloaded": gettext_lazy("Area under the FROC curve (Metrics Reloaded)"),
    "sensitivity": gettext_lazy("sensitivity at the operating threshold"),
    "fp_per_scan": gettext_lazy("false positives per scan at the operating threshold"),
    "f1": gettext_lazy("F1 at the operating threshold"),
    "patient_sensitivity": gettext_lazy("patient-level sensitivity"),
    "patient_specificity": gettext_lazy("patient-level specificity"),
    "auc": gettext_lazy("AUC (DeLong 95% CI)"),
    "auc_bootstrap": gettext_lazy("AUC (bootstrap 95% CI)"),
    "specificity": gettext_lazy("specificity at the operating threshold"),
    "youden_threshold": gettext_lazy("Youden threshold"),
    "youden_sensitivity": gettext_lazy("sensitivity at Youden's point"),
    "youden_specificity": gettext_lazy("specificity at Youden's point"),
    "dice": gettext_lazy("Dice"),
    "hd95_mm": gettext_lazy("HD95 (mm)"),
    "assd_mm": gettext_lazy("average symmetric surface distance (mm)"),
    "nsd": gettext_lazy("normalised surface Dice"),
    "lesion_sensitivity": gettext_lazy("lesion sensitivity"),
    "false_positive_lesions_per_scan": gettext_lazy("false-positive lesions per scan"),
    # DR grading (qc.evaluation.dr)
    "patient_auc": gettext_lazy("patient-level AUC (DeLong 95% CI)"),
    "grade_sensitivity": gettext_lazy("sensitivity at the grade cut-off"),
    "grade_specificity": gettext_lazy("specificity at the grade cut-off"),
    "sensitivity_ungradable_referred": gettext_lazy(
        "sensitivity, images without a product grade referred"
    ),
    "specificity_ungradable_referred": gettext_lazy(
        "specificity, images without a product grade referred"
    ),
    "quadratic_kappa": gettext_lazy("quadratic weighted kappa (grade)"),
    "grade_agreement": gettext_lazy("exact grade agreement"),
    # macular oedema (qc.evaluation.dr, with a dmo or dmo_probability column)
    "dmo_auc": gettext_lazy("macular oedema: AUC (DeLong 95% CI)"),
    "dmo_sensitivity": gettext_lazy("macular oedema: sensitivity"),
    "dmo_specificity": gettext_lazy("macular oedema: specificity"),
    "dmo_patient_auc": gettext_lazy("macular oedema: patient-level AUC (DeLong 95% CI)"),
    "dmo_patient_sensitivity": gettext_lazy("macular oedema: patient-level sensitivity"),
    "dmo_patient_specificity": gettext_lazy("macular oedema: patient-level specificity"),
    "dmo_sensitivity_ungradable_referred": gettext_lazy(
        "macular oedema: sensitivity, images without a product DMO called present"
    ),
    "dmo_specificity_ungradable_referred": gettext_lazy(
        "macular oedema: specificity, images without a product DMO called present"
    ),
}

STRATUM_LABELS = {
    "site": gettext_lazy("site"),
    "manufacturer": gettext_lazy("manufacturer"),
    "slice_thickness": gettext_lazy("slice thickness"),
    "laterality": gettext_lazy("laterality"),
    "finding_type": gettext_lazy("finding type"),
    "size": gettext_lazy("size"),
    "agreement": gettext_lazy("reader agreement"),
}

COUNT_LABELS = {
    "scans": gettext_lazy("scans"),
    "lesions": gettext_lazy("reference lesions"),
    "excluded_lesions": gettext_lazy("excluded reference findings"),
    "marks": gettext_lazy("marks scored"),
    "cases": gettext_lazy("cases"),
    "positive_cases": gettext_lazy("positive cases"),
    "hit_marks": gettext_lazy("marks on a reference lesion"),
    "false_positive_marks": gettext_lazy("false-positive marks"),
    "marks_on_excluded_only": gettext_lazy("marks on excluded findings only (not scored)"),
    # DR grading
    "images": gettext_lazy("images"),
    "patients": gettext_lazy("patients"),
    "rows": gettext_lazy("rows submitted"),
    "skipped": gettext_lazy("images skipped by the product"),
    "product_ungradable": gettext_lazy("images the product called ungradable"),
    "reference_missing": gettext_lazy("images without a reference grade (left out)"),
    "reference_ungradable": gettext_lazy("images with an ungradable reference (left out)"),
    "reference_referable_unknown": gettext_lazy(
        "images whose reference referable status is unknown (left out of referable figures)"
    ),
    "scored_images": gettext_lazy("images scored"),
    "scored_patients": gettext_lazy("patients scored"),
    "referable_images": gettext_lazy("referable images"),
    "referable_patients": gettext_lazy("referable patients"),
    "graded_pairs": gettext_lazy("images with a reference and a predicted grade"),
    "dmo_reference_images": gettext_lazy("images with a gradable reference DMO"),
    "reference_dmo_ungradable": gettext_lazy(
        "images with an ungradable reference DMO (left out of the DMO figures)"
    ),
    "reference_dmo_missing": gettext_lazy(
        "images without a reference DMO (left out of the DMO figures)"
    ),
    "product_dmo_ungradable": gettext_lazy("images the product called DMO ungradable"),
    "product_dmo_not_given": gettext_lazy("images without a product DMO output"),
    "dmo_scored_images": gettext_lazy("images scored for DMO"),
    "dmo_present_images": gettext_lazy("images with macular oedema (reference)"),
    "dmo_reference_patients": gettext_lazy("patients with a gradable reference DMO"),
    "dmo_scored_patients": gettext_lazy("patients scored for DMO"),
    "dmo_present_patients": gettext_lazy("patients with macular oedema (reference)"),
}

KIND_LABELS = {
    "detection": gettext_lazy("detection"),
    "classification": gettext_lazy("classification"),
    "segmentation": gettext_lazy("segmentation"),
    "dr_grading": gettext_lazy("DR grading (fundus)"),
    "comparison": gettext_lazy("comparison"),
}

RULE_LABELS = {
    "centre_distance": gettext_lazy("centre within distance (mm)"),
    "centre_within_radius": gettext_lazy("centre within the finding's radius"),
    "centre_in_contour": gettext_lazy("centre in contour"),
    "distance_or_inside": gettext_lazy("centre within distance or in contour"),
    "overlap_iou": gettext_lazy("overlap (IoU) in 3D"),
    "overlap_dice": gettext_lazy("overlap (Dice) in 3D"),
    "pylidc": gettext_lazy("pylidc clustering"),
}

# The order figures are listed in (the kit's dicts keep their own order).
FIGURE_ORDER = (
    "cpm",
    "froc_score_monai",
    "froc_auc_metrics_reloaded",
    "sens_at_0.125",
    "sens_at_0.25",
    "sens_at_0.5",
    "sens_at_1",
    "sens_at_2",
    "sens_at_4",
    "sens_at_8",
    "sensitivity",
    "fp_per_scan",
    "f1",
    "patient_sensitivity",
    "patient_specificity",
    "auc",
    "auc_bootstrap",
    "specificity",
    "youden_threshold",
    "youden_sensitivity",
    "youden_specificity",
    "dice",
    "hd95_mm",
    "assd_mm",
    "nsd",
    "lesion_sensitivity",
    "false_positive_lesions_per_scan",
    "patient_auc",
    "grade_sensitivity",
    "grade_specificity",
    "sensitivity_ungradable_referred",
    "specificity_ungradable_referred",
    "quadratic_kappa",
    "grade_agreement",
)


# DR grading leads with the AUCs, then the calls, then the grade agreement.
DR_FIGURE_ORDER = (
    "auc",
    "patient_auc",
    "sensitivity",
    "specificity",
    "patient_sensitivity",
    "patient_specificity",
    "grade_sensitivity",
    "grade_specificity",
    "sensitivity_ungradable_referred",
    "specificity_ungradable_referred",
    "quadratic_kappa",
    "grade_agreement",
    "dmo_auc",
    "dmo_patient_auc",
    "dmo_sensitivity",
    "dmo_specificity",
    "dmo_patient_sensitivity",
    "dmo_patient_specificity",
    "dmo_sensitivity_ungradable_referred",
    "dmo_specificity_ungradable_referred",
)


def ordered(names, kind: str = "") -> list[str]:
    order = DR_FIGURE_ORDER if kind == "dr_grading" else FIGURE_ORDER
    rank = {n: i for i, n in enumerate(order)}
    return sorted(names, key=lambda n: (rank.get(n, len(rank)), n))


def _sens_label(name: str) -> str | None:
    if name.startswith("sens_at_"):
        return _("sensitivity at %(rate)s FP per scan") % {"rate": name[len("sens_at_") :]}
    return None


def figure_label(name: str) -> str:
    label = FIGURE_LABELS.get(name)
    return str(label) if label is not None else (_sens_label(name) or name)


# ------------------------------------------------------------------ problems


def _list(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def problem_message(code: str, params: dict | None) -> str:
    """The parser's problem in the active language, from its code and params."""
    p = {k: _list(v) for k, v in (params or {}).items()}

    def get(key: str) -> str:
        return p.get(key, "")

    if code == "missing_columns":
        if get("missing"):
            return _("The header lacks the column(s) %(missing)s; expected %(expected)s.") % {
                "missing": get("missing"),
                "expected": get("expected"),
            }
        return _("This row has %(found)s field(s); the header has %(expected)s.") % {
            "found": get("found"),
            "expected": get("expected"),
        }
    if code == "extra_columns":
        if get("extra"):
            return _(
                "The header has unexpected or repeated column(s) %(extra)s; expected %(expected)s."
            ) % {"extra": get("extra"), "expected": get("expected")}
        return _("This row has %(found)s field(s); the header has %(expected)s.") % {
            "found": get("found"),
            "expected": get("expected"),
        }
    messages = {
        "unknown_series": _("Series %(value)s is not a scan of this evaluation."),
        "unknown_case": _("Case %(value)s is not a case of this evaluation."),
        "not_a_number": _("%(column)s is not a number: %(value)s"),
        "nan": _("%(column)s is %(value)s, not a finite number."),
        "probability_range": _("The probability %(value)s is outside [0, 1]."),
        "duplicate_row": _("This row repeats line %(first_line)s."),
        "outside_volume": _(
            "The point (%(x)s, %(y)s, %(z)s) mm lies outside series %(series_uid)s."
        ),
        "empty": _("The file is empty: no header."),
        "encoding": _("This line is not UTF-8 (byte %(byte)s)."),
        "too_many_marks": _(
            "Series %(series_uid)s has %(marks)s marks; only the %(kept)s most probable are scored."
        ),
        "not_seg": _("%(file)s is not a readable DICOM Segmentation object."),
        "seg_wrong_series": _(
            "%(file)s references series %(series_uids)s, not a scan of this evaluation."
        ),
        "seg_geometry": _(
            "%(file)s: its frames do not lie on the grid of series %(series_uid)s (%(reason)s)."
        ),
        "missing_cases": _("%(count)s case(s) have no score: %(cases)s"),
        "missing_value": _("%(column)s is empty."),
        "grade_range": _("%(column)s %(value)s is not a DR grade (0-4 or ungradable)."),
        "dmo_value": _("%(column)s %(value)s is not absent, present or ungradable."),
        "skipped_images": _(
            "%(count)s image(s) have no row: the product skipped them (%(cases)s)."
        ),
    }
    template = messages.get(code)
    if template is None:
        return _("Problem %(code)s.") % {"code": code}
    try:
        return template % {k: p.get(k, "?") for k in _keys(template)}
    except (KeyError, TypeError, ValueError):
        return _("Problem %(code)s.") % {"code": code}


def _keys(template: str) -> list[str]:
    import re

    return re.findall(r"%\((\w+)\)s", template)


def translated_problems(problems) -> list[dict]:
    """[{line, code, message (active language), params}] from qc Problems or dicts."""
    out = []
    for p in problems:
        d = p if isinstance(p, dict) else p.as_dict()
        out.append(
            {
                "line": d.get("line"),
                "code": d.get("code", ""),
                "message": problem_message(d.get("code", ""), d.get("params")),
                "params": d.get("params") or {},
            }
        )
    return out


# ------------------------------------------------------------------ figures


def figure_labels() -> dict[str, str]:
    return {
        "froc": _("FROC curve"),
        "fp_per_scan": _("false positives per scan"),
        "sensitivity": _("sensitivity"),
        "ci_band": _("confidence band (95%)"),
        "cpm_points": _("CPM operating points"),
        "roc": _("ROC curve"),
        "fpr": _("1 - specificity"),
        "tpr": _("sensitivity"),
        "chance": _("chance"),
        "rules": _("Figures under every match rule"),
        "declared": _("declared rule"),
        "overall": _("all scans"),
        "stratum": _("By stratum"),
        "cpm": "CPM",
        "auc": "AUC",
        "dice": "Dice",
        "image_roc": _("per image"),
        "patient_roc": _("per patient"),
        "confusion": _("DR grade: reference against product"),
        "reference_grade": _("reference grade"),
        "predicted_grade": _("product grade"),
        "ungradable": _("ungradable"),
        "not_given": _("not given"),
        "dmo_roc": _("Macular oedema: ROC curve"),
        **{k: str(v) for k, v in STRATUM_LABELS.items()},
    }


def plots(result: dict) -> dict[str, str]:
    """{name: base64 PNG} of every plot, labelled in the active language."""
    from qc.evaluation import figures

    labels = figure_labels()
    if result.get("kind") == "dr_grading":
        labels["overall"] = _("all images")
    pngs = figures.figures(result, "png", labels=labels)
    return {name: base64.b64encode(data).decode("ascii") for name, data in pngs.items()}


# ------------------------------------------------------------------ tables


def _fig(entry) -> tuple:
    entry = entry or {}
    ci = entry.get("ci") or [None, None]
    return entry.get("value"), ci[0], ci[1]


def csv_text(result: dict) -> str:
    """figures.csv: one row per figure, overall, per rule and per stratum level
    (the project's CSV writer: formulas neutralised, UTF-8 with BOM)."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(
        [
            "scope",
            "rule",
            "rule_threshold",
            "declared",
            "stratum",
            "level",
            "scans",
            "lesions",
            "figure",
            "value",
            "ci_low",
            "ci_high",
        ]
    )
    conv = result.get("conventions") or {}
    for name, entry in (result.get("figures") or {}).items():
        w.writerow(
            [
                "overall",
                conv.get("rule", ""),
                conv.get("threshold", ""),
                "",
                "",
                "",
                "",
                "",
                name,
                *_fig(entry),
            ]
        )
    for row in result.get("rules") or []:
        for name, entry in (row.get("figures") or {}).items():
            w.writerow(
                [
                    "rule",
                    row.get("rule"),
                    row.get("threshold"),
                    bool(row.get("declared")),
                    "",
                    "",
                    "",
                    "",
                    name,
                    *_fig(entry),
                ]
            )
    for stratum, levels in (result.get("strata") or {}).items():
        for level, block in sorted((levels or {}).items()):
            for name, entry in (block.get("figures") or {}).items():
                w.writerow(
                    [
                        "stratum",
                        conv.get("rule", ""),
                        conv.get("threshold", ""),
                        "",
                        stratum,
                        level,
                        block.get("scans"),
                        block.get("lesions"),
                        name,
                        *_fig(entry),
                    ]
                )
    grading = result.get("grading") or {}
    matrix = grading.get("confusion_matrix") or {}
    for ref, row in zip(matrix.get("rows") or [], matrix.get("counts") or [], strict=False):
        for pred, n in zip(matrix.get("columns") or [], row, strict=False):
            w.writerow(
                ["confusion_matrix", "", "", "", "reference_grade", ref, "", "", pred, n, "", ""]
            )
    for scope, table in (grading.get("referable_tables") or {}).items():
        for cell, n in (table or {}).items():
            w.writerow(["referable_table", "", "", "", scope, cell, "", "", "count", n, "", ""])
    for scope, table in ((grading.get("dmo") or {}).get("tables") or {}).items():
        for cell, n in (table or {}).items():
            w.writerow(["dmo_table", "", "", "", scope, cell, "", "", "count", n, "", ""])
    if result.get("difference"):
        d = result["difference"]
        w.writerow(
            [
                "difference",
                conv.get("rule", ""),
                "",
                "",
                "",
                "",
                "",
                "",
                f"{d.get('metric')} a-b",
                d.get("value"),
                *(d.get("ci") or [None, None]),
            ]
        )
    return buf.getvalue()


def result_manifest(result: dict, meta: dict | None = None) -> dict:
    """What a result can be re-derived and checked from."""
    dataset = result.get("dataset") or {}
    submission = result.get("submission") or {}
    conv = result.get("conventions") or {}
    out = {
        "kit_version": result.get("kit_version"),
        "kind": result.get("kind"),
        "product": result.get("product"),
        "dataset": dataset.get("id"),
        "version": dataset.get("version"),
        "split": dataset.get("split"),
        "manifest_sha256": dataset.get("manifest_sha256"),
        "manifest_source": conv.get("manifest_source", ""),
        "rule": conv.get("rule"),
        "rule_threshold": conv.get("threshold"),
        "declared_rule": conv.get("declared_rule"),
        "declared_threshold": conv.get("declared_threshold"),
        "operating_threshold": conv.get("operating_threshold"),
        "conventions": conv,
    }
    if "a" in submission and "b" in submission:
        out["submissions"] = {k: submission[k].get("sha256") for k in ("a", "b")}
    else:
        out["submission_sha256"] = submission.get("sha256")
        out["submission_rows"] = submission.get("rows")
    if meta:
        out["evaluation"] = {
            k: meta[k] for k in ("id", "created_at", "created_by", "filename", "bytes") if k in meta
        }
    return out


def manifest_text(result: dict, meta: dict | None = None) -> str:
    return json.dumps(result_manifest(result, meta), ensure_ascii=False, indent=1, default=str)


# ------------------------------------------------------------------ report


def _ci(entry) -> str:
    """A figure and its interval for the report's tables; the interval is one
    unbreakable unit (a narrow column wraps before it, never inside it)."""
    value, low, high = _fig(entry)
    if value is None:
        return "—"
    if low is None or high is None:
        return f"{value:.3f}"
    return format_html(
        '{} <span class="ci">({}–{})</span>', f"{value:.3f}", f"{low:.3f}", f"{high:.3f}"
    )


# The columns of the rule and strata tables (every figure is in figures.csv).
TABLE_FIGURES = (
    "cpm",
    "froc_score_monai",
    "froc_auc_metrics_reloaded",
    "sensitivity",
    "fp_per_scan",
    "patient_sensitivity",
    "patient_specificity",
    "auc",
    "specificity",
    "dice",
    "hd95_mm",
    "nsd",
    "lesion_sensitivity",
    "patient_auc",
    "quadratic_kappa",
)


def _columns(names: set[str], kind: str = "") -> list[str]:
    chosen = [n for n in names if n in TABLE_FIGURES]
    return ordered(chosen or names, kind)


def context(result: dict, meta: dict | None = None, *, with_plots: bool = True) -> dict:
    """What datasets/_evaluation_report.html needs, in the active language."""
    conv = dict(result.get("conventions") or {})
    figures = result.get("figures") or {}
    names = ordered(figures, result.get("kind") or "")
    rule_names = _columns({n for r in result.get("rules") or [] for n in (r.get("figures") or {})})
    strata = []
    for key, levels in (result.get("strata") or {}).items():
        level_names = _columns(
            {n for b in (levels or {}).values() for n in (b.get("figures") or {})},
            result.get("kind") or "",
        )
        dr = result.get("kind") == "dr_grading"
        strata.append(
            {
                "key": key,
                "label": str(STRATUM_LABELS.get(key, key)),
                "units": str(COUNT_LABELS["images"] if dr else COUNT_LABELS["scans"]),
                "positives": str(
                    COUNT_LABELS["referable_images"] if dr else COUNT_LABELS["lesions"]
                ),
                "figures": [(n, figure_label(n)) for n in level_names],
                "levels": [
                    {
                        "level": level,
                        "scans": block.get("scans"),
                        "lesions": block.get("lesions"),
                        "values": [_ci((block.get("figures") or {}).get(n)) for n in level_names],
                    }
                    for level, block in sorted((levels or {}).items())
                ],
            }
        )
    bootstrap = conv.pop("bootstrap", {}) or {}
    submission = result.get("submission") or {}
    warnings = (
        translated_problems(submission.get("warnings") or []) if "warnings" in submission else []
    )
    return {
        "result": result,
        "meta": meta or {},
        "kind_label": str(KIND_LABELS.get(result.get("kind"), result.get("kind"))),
        "figures": [(n, figure_label(n), _ci(figures[n])) for n in names],
        "counts": [
            (str(COUNT_LABELS.get(k, k)), v) for k, v in (result.get("counts") or {}).items()
        ],
        "rule_figures": [(n, figure_label(n)) for n in rule_names],
        "rules": [
            {
                "rule": r.get("rule"),
                "rule_label": str(RULE_LABELS.get(r.get("rule"), r.get("rule"))),
                "threshold": r.get("threshold"),
                "declared": bool(r.get("declared")),
                "description": r.get("description", ""),
                "values": [_ci((r.get("figures") or {}).get(n)) for n in rule_names],
            }
            for r in result.get("rules") or []
        ],
        "strata": strata,
        "conventions": sorted(
            (k, v if isinstance(v, str) else json.dumps(v)) for k, v in conv.items()
        ),
        "bootstrap": bootstrap,
        "warnings": warnings,
        "lesions": result.get("lesions") or [],
        "difference": result.get("difference"),
        "grading": grading_context(result),
        "plots": plots(result) if with_plots else {},
    }


TABLE_LABELS = {
    "image": gettext_lazy("per image, at the threshold"),
    "patient": gettext_lazy("per patient, at the threshold"),
    "grade_cutoff": gettext_lazy("per image, at the grade cut-off"),
    "ungradable_referred": gettext_lazy("per image, images without a product grade referred"),
}

DMO_TABLE_LABELS = {
    "image": gettext_lazy("per image, at the product's call"),
    "patient": gettext_lazy("per patient, at the product's call"),
    "ungradable_referred": gettext_lazy("per image, images without a product DMO called present"),
}


def _grade_label(value: str) -> str:
    if value == "ungradable":
        return _("ungradable")
    if value == "not_given":
        return _("not given")
    return value


def grading_context(result: dict) -> dict | None:
    """The DR grading blocks of the report: the grade confusion matrix and the
    referable 2x2 tables (None for other kinds)."""
    grading = result.get("grading")
    if not grading:
        return None
    matrix = grading.get("confusion_matrix") or {}
    conv = result.get("conventions") or {}
    return {
        "referable_from": grading.get("referable_from"),
        "threshold": grading.get("threshold"),
        "by_probability": grading.get("threshold_source") == "operating threshold",
        "columns": [(c, _grade_label(c)) for c in matrix.get("columns") or []],
        "rows": [
            {"grade": r, "label": _grade_label(r), "counts": counts}
            for r, counts in zip(matrix.get("rows") or [], matrix.get("counts") or [], strict=False)
        ],
        "tables": [
            {"key": k, "label": str(TABLE_LABELS.get(k, k)), **(v or {})}
            for k, v in (grading.get("referable_tables") or {}).items()
        ],
        "patient_rule": conv.get("patient_rule", ""),
        "dmo": _dmo_context(grading.get("dmo"), conv, result.get("counts") or {}),
    }


def _dmo_context(dmo: dict | None, conv: dict, counts: dict) -> dict | None:
    """The macular oedema 2x2 tables, per image and per patient, and the
    patients they count (None when the submission gave no DMO)."""
    if not dmo:
        return None
    return {
        "by_probability": dmo.get("score_source") == "probability",
        "patient_rule": conv.get("dmo_patient_rule", ""),
        "patients": {
            "reference": counts.get("dmo_reference_patients"),
            "scored": counts.get("dmo_scored_patients"),
            "present": counts.get("dmo_present_patients"),
        },
        "tables": [
            {"key": k, "label": str(DMO_TABLE_LABELS.get(k, k)), **(v or {})}
            for k, v in (dmo.get("tables") or {}).items()
        ],
    }


def meta_of(evaluation) -> dict:
    user = evaluation.created_by
    profile = getattr(user, "profile", None) if user else None
    return {
        "id": evaluation.pk,
        "project": evaluation.project.slug,
        "version": evaluation.dataset_version.version,
        "split": evaluation.split,
        "product": evaluation.product,
        "filename": evaluation.submission_name,
        "bytes": evaluation.submission_bytes,
        "created_at": evaluation.created_at.isoformat(timespec="seconds")
        if evaluation.created_at
        else "",
        "created_by": (profile.pseudonym if profile else user.get_username()) if user else "",
    }


LANGUAGES = (("zh", "zh-hans"), ("en", "en"))


def report_html(result: dict, meta: dict | None = None) -> str:
    """The self-contained, bilingual report.html (see the module docstring)."""
    sections = []
    for anchor, code in LANGUAGES:
        with translation.override(code):
            sections.append(
                {
                    "anchor": anchor,
                    "lang": code,
                    "html": mark_safe(  # noqa: S308  our own template's escaped output
                        render_to_string(
                            "datasets/_evaluation_report.html",
                            {**context(result, meta), "standalone": True},
                        )
                    ),
                }
            )
    # Shown in the order zh, en; en comes first in the markup so that
    # `#en:target ~ #zh` can hide the Chinese section when English is chosen.
    return render_to_string(
        "datasets/evaluation_report_file.html",
        {"zh": sections[0], "en": sections[1], "result": result, "meta": meta or {}},
    )
