"""Agreement reports: rows to qc.agreement's plain data, caching, access.

`report_for(project, case_ids=None) -> dict` is the function other apps call
(dataset versions, exports): the full report for a set of cases, from the
cache when its fingerprint still matches. `figures(report, fmt="png")` gives
{name: image bytes} of the same report. Everything else here serves the page,
the REST endpoint, the `agreement` job and the management command.

Only submitted phase-1 operational reads count (qualification reads never do);
the reference standard is the current included ReferenceFindings of cases that
are adjudicated or frozen.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from annotation_server.adjudication.marks import (
    grid_for_series,
    mark_for_finding,
    marks_for_reference,
)
from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.agreement.models import AgreementReport, AgreementSettings
from annotation_server.audit import services as audit
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_404
from annotation_server.projects.schema import outside_scale
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from export.tables import csv_writer
from qc.agreement import figures as plots
from qc.agreement.report import CaseData, Field, LesionRule, Reader, Settings, build_report

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
MEASURED_KINDS = ("enum", "ordinal", "number", "boolean")
REFERENCE_STATES = (Case.State.ADJUDICATED, Case.State.FROZEN)
PHOTO_MODALITIES = frozenset({"OP", "XC"})


# -- access -------------------------------------------------------------------------


def project_for_figures(request, slug: str):
    """The project whose agreement figures `request.user` may see: its managers
    only (404 to outsiders, 403 to other members), and never while they still
    hold a blind read of one of its cases (the figures reveal others' marks)."""
    project = managed_project_or_404(request, slug)
    if _still_reading(request.user, project):
        raise PermissionDenied(
            _("Agreement figures are hidden while you still have blind reads in this project.")
        )
    return project


def _still_reading(user, project) -> bool:
    blind = getattr(getattr(project, "protocol", None), "blind", True)
    if not blind:
        return False
    return (
        ReadingTask.objects.operational()
        .filter(case__project=project, reader=user, phase=1)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .exists()
    )


# -- settings ------------------------------------------------------------------------


def settings_for(project) -> AgreementSettings:
    found, _created = AgreementSettings.objects.get_or_create(project=project)
    return found


def update_settings(project, by, **values) -> AgreementSettings:
    current = settings_for(project)
    changed = {}
    for key, value in values.items():
        if getattr(current, key) != value:
            changed[key] = {"from": getattr(current, key), "to": value}
            setattr(current, key, value)
    current.full_clean()
    current.save()
    if changed:
        audit.record(
            "agreement.settings_changed",
            actor=by,
            obj=project,
            project_id=project.pk,
            data={k: {"from": v["from"], "to": v["to"]} for k, v in changed.items()},
        )
    return current


def is_photograph_project(project) -> bool:
    """2-D photographs (colour fundus, external eye): lesions are matched per
    type under the agreement settings' lesion rule, in image pixels."""
    return bool(set(project.modalities) & PHOTO_MODALITIES)


def outline_types(definition: dict) -> tuple[str, ...]:
    """Finding types drawn once per read as an outline (the optic disc and cup
    the schema's vertical cup-to-disc ratio is derived from)."""
    out: list[str] = []
    for item in definition.get("derived", []):
        if item.get("rule") == "vertical_cdr":
            inputs = item.get("inputs", {})
            out += [inputs.get("disc", "optic_disc"), inputs.get("cup", "optic_cup")]
    return tuple(dict.fromkeys(out))


def lesion_rule(project, own: AgreementSettings) -> LesionRule | None:
    if not is_photograph_project(project):
        return None
    definition = project.label_schema.definition
    outlines = outline_types(definition)
    points, regions = [], []
    for ft in definition.get("finding_types", []):
        if ft["key"] in outlines:
            continue
        (points if list(ft.get("geometry", [])) == ["point"] else regions).append(ft["key"])
    return LesionRule(
        point_radius_px=own.lesion_point_radius_px,
        region_rule=own.lesion_region_rule,
        region_threshold=own.lesion_region_threshold,
        point_types=tuple(points),
        region_types=tuple(regions),
    )


def _settings(project) -> Settings:
    own = settings_for(project)
    protocol = getattr(project, "protocol", None)
    return Settings(
        rule=getattr(protocol, "match_rule", "centre_distance"),
        threshold=float(getattr(protocol, "match_threshold", 5.0)),
        replicates=own.replicates,
        tolerance_mm=own.nsd_tolerance_mm,
        stratify_by=own.stratify_by,
        lesions=lesion_rule(project, own),
        outline_types=outline_types(project.label_schema.definition),
    )


# -- rows to plain data ---------------------------------------------------------------


def _label(text, lang: str = "en") -> str:
    if isinstance(text, dict):
        return str(text.get(lang) or text.get("en") or "")
    return str(text or "")


def fields_of(schema_definition: dict) -> list[Field]:
    out = []
    for attr in schema_definition.get("case_fields", []):
        if attr.get("kind") in MEASURED_KINDS and not attr.get("multiple"):
            out.append(_field(attr, ""))
    for ft in schema_definition.get("finding_types", []):
        for attr in ft.get("attributes", []):
            if attr.get("kind") in MEASURED_KINDS and not attr.get("multiple"):
                out.append(_field(attr, ft["key"]))
    for item in schema_definition.get("derived", []):  # referable DR, cup-to-disc ratio
        if item.get("kind") in MEASURED_KINDS:
            out.append(_field(item, "", derived=True))
    return out


def _field(attr: dict, finding_type: str, derived: bool = False) -> Field:
    options = tuple(o["value"] for o in attr.get("options", [])) if attr["kind"] == "enum" else ()
    lo, hi = attr.get("min"), attr.get("max")
    if attr["kind"] == "ordinal" and isinstance(lo, int) and isinstance(hi, int):
        options = tuple(range(lo, hi + 1))  # the whole scale, for the kappa weights
    return Field(
        key=attr["key"],
        kind=attr["kind"],
        label=_label(attr.get("label")),
        label_zh=_label(attr.get("label"), "zh-hans"),
        finding_type=finding_type,
        categories=options,
        unit=attr.get("unit", ""),
        outside_scale=tuple(outside_scale(attr)),
        derived=derived,
    )


def _lang() -> str:
    return "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"


def finding_type_labels(project) -> dict[str, str]:
    """{finding type key: its schema label in the page's language}."""
    lang = _lang()
    return {
        ft["key"]: _label(ft.get("label"), lang) or ft["key"]
        for ft in project.label_schema.definition.get("finding_types", [])
    }


def field_labels(project) -> dict[str, str]:
    """{case field or derived field key: its schema label in the page's language}."""
    lang = _lang()
    definition = project.label_schema.definition
    items = definition.get("case_fields", []) + definition.get("derived", [])
    return {item["key"]: _label(item.get("label"), lang) or item["key"] for item in items}


def thickness_band(mm) -> str:
    if not mm:
        return "unknown"
    for upper, band in ((1.25, "<=1.25 mm"), (2.5, "1.25-2.5 mm"), (5.0, "2.5-5 mm")):
        if mm <= upper:
            return band
    return ">5 mm"


def _cases(project, case_ids):
    cases = Case.objects.filter(project=project, is_qualification=False)
    if case_ids is not None:
        cases = cases.filter(pk__in=list(case_ids))
    return cases


def _tasks(cases):
    return ReadingTask.objects.operational().filter(
        case__in=cases, phase=1, state=ReadingTask.State.SUBMITTED
    )


def fingerprint(project, case_ids=None) -> str:
    """A hash of everything the report depends on (see AgreementReport)."""
    cases = _cases(project, case_ids)
    tasks = _tasks(cases)
    s = _settings(project)
    parts = {
        "cases": list(cases.order_by("pk").values_list("pk", "state", "version")),
        "tasks": list(tasks.order_by("pk").values_list("pk", "reader_id", "version")),
        "findings": list(
            Finding.objects.filter(task__in=tasks)
            .order_by("pk")
            .values_list("pk", "version", "updated_at")
        ),
        "labels": list(
            CaseLabel.objects.filter(task__in=tasks)
            .order_by("pk")
            .values_list("pk", "version", "updated_at")
        ),
        "reference": list(
            ReferenceFinding.objects.filter(case__in=cases, is_current=True)
            .order_by("pk")
            .values_list("pk", "revision", "status")
        ),
        "settings": [
            s.rule,
            s.threshold,
            s.replicates,
            s.tolerance_mm,
            s.stratify_by,
            s.lesions.as_dict() if s.lesions else None,
            list(s.outline_types),
        ],
    }
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def collect(project, case_ids=None) -> tuple[list[Field], list[Reader], list[CaseData]]:
    """The project's reads as qc.agreement plain data."""
    cases = list(_cases(project, case_ids).select_related("site", "series").order_by("code"))
    tasks = list(_tasks(cases).select_related("reader__profile").order_by("case_id", "reader_id"))
    by_case: dict[int, list] = {}
    readers: dict[int, Reader] = {}
    for t in tasks:
        by_case.setdefault(t.case_id, []).append(t)
        if t.reader_id not in readers:
            profile = getattr(t.reader, "profile", None)
            readers[t.reader_id] = Reader(
                id=str(t.reader_id),
                label=getattr(profile, "pseudonym", "") or t.reader.get_username(),
                experience_band=getattr(profile, "experience_band", "unknown"),
            )
    findings: dict[int, list] = {}
    for f in Finding.objects.filter(task__in=[t.pk for t in tasks]).order_by("task_id", "id"):
        findings.setdefault(f.task_id, []).append(f)
    labels = {  # the typed answers and the server's derived fields (referable DR, CDR)
        row.task_id: {**(row.values or {}), **(row.derived or {})}
        for row in CaseLabel.objects.filter(task__in=[t.pk for t in tasks])
    }
    out = []
    for case in cases:
        reads = by_case.get(case.pk, [])
        grid = grid_for_series(case.series)
        weeks = [t.submitted_at for t in reads if t.submitted_at]
        week = max(weeks).strftime("%G-W%V") if weeks else ""
        out.append(
            CaseData(
                id=case.code,
                reads={
                    str(t.reader_id): [
                        mark_for_finding(f, grid, reader=str(t.reader_id))
                        for f in findings.get(t.pk, [])
                    ]
                    for t in reads
                },
                labels={str(t.reader_id): dict(labels.get(t.pk) or {}) for t in reads},
                reference=marks_for_reference(case, grid)
                if case.state in REFERENCE_STATES
                else None,
                grid=grid,
                strata={
                    "site": case.site.code if case.site else "unknown",
                    "manufacturer": case.series.manufacturer or "unknown",
                    "thickness_band": thickness_band(case.series.slice_thickness_mm),
                },
                week=week,
            )
        )
    fields = fields_of(project.label_schema.definition)
    return fields, sorted(readers.values(), key=lambda r: r.label), out


def compute(project, case_ids=None, *, progress=None) -> dict:
    """Build the report now (no cache)."""
    started = time.perf_counter()
    fields, readers, cases = collect(project, case_ids)
    if progress:
        progress(40)
    report = build_report(fields, readers, cases, _settings(project))
    report["project"] = project.slug
    if not case_ids:
        from annotation_server.agreement.assist import project_assistance

        report["assistance"] = project_assistance(project)
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def _scope(case_ids) -> str:
    if case_ids is None:
        return "project"
    ids = ",".join(str(i) for i in sorted(int(c) for c in case_ids))
    return "cases:" + hashlib.sha256(ids.encode()).hexdigest()[:40]


def cached(project, case_ids=None) -> AgreementReport | None:
    """The stored report whose fingerprint matches the reads as they are now."""
    return (
        AgreementReport.objects.filter(
            project=project, scope=_scope(case_ids), fingerprint=fingerprint(project, case_ids)
        )
        .order_by("-created_at")
        .first()
    )


def latest(project) -> AgreementReport | None:
    return AgreementReport.objects.filter(project=project, scope="project").first()


def store(project, case_ids=None, *, by=None, job=None, progress=None) -> AgreementReport:
    """Compute and keep a report (the cached one when it is still current)."""
    hit = cached(project, case_ids)
    if hit is not None:
        return hit
    stamp = fingerprint(project, case_ids)
    report = compute(project, case_ids, progress=progress)
    report["fingerprint"] = stamp
    row = AgreementReport.objects.create(
        project=project,
        fingerprint=stamp,
        scope=_scope(case_ids),
        report=report,
        seconds=report["seconds"],
        job=job,
        created_by=by if by is not None and getattr(by, "is_authenticated", False) else None,
    )
    report["generated_at"] = row.created_at.isoformat()
    row.report = report
    row.save(update_fields=["report"])
    audit.record(
        "agreement.computed",
        actor=by,
        obj=project,
        project_id=project.pk,
        data={"fingerprint": stamp, "scope": row.scope, "cases": report["counts"]["cases"]},
    )
    return row


def report_for(project, case_ids=None) -> dict:
    """The full agreement report of `case_ids` (all the project's cases when
    None), decorated with the manager's flag threshold. For datasets/exports."""
    return decorate(store(project, case_ids).report, settings_for(project).flag_below)


def decorate(report: dict, flag_below: float) -> dict:
    """Flag readers whose sensitivity against the reference is below the threshold."""
    report = dict(report)
    report["flag_below"] = flag_below
    flagged = []
    for row in report["detection"]["per_reader"]:
        value = row["sensitivity"]["value"]
        row["flagged"] = value is not None and value < flag_below
        if row["flagged"]:
            flagged.append(row["reader"])
    report["flagged_readers"] = flagged
    return report


# -- figures, JSON, CSV -----------------------------------------------------------------


def figure_labels() -> dict[str, str]:
    return {
        "heatmap": _("Pairwise detection agreement between readers"),
        "detection": _("Readers against the reference standard"),
        "sensitivity": _("sensitivity"),
        "f1": _("F1"),
        "fp_per_case": _("false positives per case"),
        "threshold": _("flag threshold"),
        "lidc": _("Lesions marked by k readers"),
        "readers_marking": _("readers marking"),
        "lesions": _("lesions"),
        "bland_altman": _("Bland-Altman"),
        "mean": _("mean of two readers"),
        "difference": _("difference (a - b)"),
        "bias": _("bias"),
        "loa": _("limits of agreement"),
        "weekly": _("Agreement per week"),
        "week": _("week"),
        "detection_agreement": _("detection agreement"),
        "attribute_alpha": _("attribute alpha"),
    }


def figures(report: dict, fmt: str = "png") -> dict[str, bytes]:
    """{name: PNG (or SVG) bytes} of every plot of the report."""
    if (get_language() or "").lower().startswith("zh"):
        report = {
            **report,
            "attributes": [_zh(b) for b in report["attributes"]],
            "case_labels": [_zh(b) for b in report["case_labels"]],
        }
    return plots.figures(report, fmt, labels=figure_labels(), threshold=report.get("flag_below"))


def _zh(block: dict) -> dict:
    return {**block, "label": block.get("label_zh") or block["label"]}


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def _est(e) -> list:
    if not e:
        return ["", "", "", ""]
    return [e.get("value"), e.get("low"), e.get("high"), e.get("n")]


def csv_text(report: dict) -> str:
    """One long table: section, subject, measure, value, CI low, CI high, n."""
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(["section", "subject", "measure", "value", "ci_low", "ci_high", "n"])
    names = {r["id"]: r["label"] for r in report["readers"]}
    for block in report["case_labels"] + report["attributes"]:
        section = "case_label" if not block["finding_type"] else "attribute"
        for measure in (
            "percent_agreement",
            "fleiss_kappa",
            "krippendorff_alpha",
            "gwet_ac",
            "gwet_ac1",
            "cv",
            "mean_abs_difference",
        ):
            if block.get(measure):
                w.writerow([section, block["name"], measure, *_est(block[measure])])
        for weights, e in (block.get("kappa_mean") or {}).items():
            w.writerow([section, block["name"], f"kappa_{weights}_mean_of_pairs", *_est(e)])
        outside = block.get("outside_scale")
        if outside:
            subject = f"{block['name']} gradable vs {'/'.join(outside['values'])}"
            for measure in ("percent_agreement", "fleiss_kappa", "gwet_ac1"):
                w.writerow([section, subject, measure, *_est(outside[measure])])
            for value, n in outside["ratings"].items():
                w.writerow([section, block["name"], f"ratings {value}", n, "", "", ""])
        for form, e in (block.get("icc") or {}).items():
            w.writerow([section, block["name"], form, *_est(e)])
        for pair in block.get("pairwise", []):
            subject = f"{block['name']} {names.get(pair['a'])}~{names.get(pair['b'])}"
            for key, e in pair.items():
                if key.startswith("kappa_"):
                    w.writerow([section, subject, key, *_est(e)])
        for pair in block.get("bland_altman", []):
            subject = f"{block['name']} {names.get(pair['a'])}~{names.get(pair['b'])}"
            for key in ("bias", "loa_low", "loa_high"):
                w.writerow([section, subject, f"bland_altman_{key}", *_est(pair[key])])
    det = report["detection"]
    w.writerow(["detection", "all", "pairwise_agreement", *_est(det["agreement"])])
    for row in det["lidc_table"]:
        w.writerow(
            ["detection", f"marked by {row['readers']}", "lesions", row["lesions"], "", "", ""]
        )
    for pair in det["pairwise"]:
        subject = f"{names.get(pair['a'])}~{names.get(pair['b'])}"
        w.writerow(["detection", subject, "agreement", *_est(pair["agreement"])])
    for row in det.get("by_type", []):
        t = row["finding_type"]
        w.writerow(["lesion_type", t, "positive_specific_agreement", *_est(row["agreement"])])
        for key in ("fleiss_kappa", "gwet_ac1"):
            w.writerow(["lesion_type", t, f"presence_{key}", *_est(row["presence"][key])])
        for pair in row["pairwise"]:
            subject = f"{t} {names.get(pair['a'])}~{names.get(pair['b'])}"
            w.writerow(["lesion_type", subject, "agreement", *_est(pair["agreement"])])
    for row in report.get("outlines", []):
        for key in ("dice", "iou"):
            w.writerow(["outline", row["finding_type"], key, *_est(row[key])])
    for row in det["per_reader"]:
        for key in ("sensitivity", "fp_per_case", "f1"):
            w.writerow(["reader", names.get(row["reader"]), key, *_est(row[key])])
    for key in ("dice", "iou", "hd95_mm", "assd_mm", "nsd"):
        w.writerow(["shapes", "all pairs", key, *_est(report["shapes"][key])])
    for dim in report["strata"]:
        for group in dim["groups"]:
            for key, e in group.items():
                if isinstance(e, dict) and "value" in e:
                    w.writerow([f"stratum:{dim['dimension']}", group["value"], key, *_est(e)])
    for week in report["weekly"]:
        for key, e in week.items():
            if isinstance(e, dict) and "value" in e:
                w.writerow(["week", week["week"], key, *_est(e)])
    return buf.getvalue()
