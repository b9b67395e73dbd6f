"""The project QC page: per-series results, overrides, re-runs, and the
distribution of the collected data as tables and CSV: by site, vendor, model,
thickness, kVp, kernel, age band and sex; for a photograph project (OP, XC) by
site, camera make and model, resolution (rows x columns) and eye (OD/OS)."""

from __future__ import annotations

from collections import Counter

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from annotation_server.imaging.models import Instance
from annotation_server.imaging.study_series import view_of
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_404, managed_project_or_hide
from annotation_server.projects.services import TransitionError
from annotation_server.quality.models import QcReport
from annotation_server.quality.overrides import attach_overrides
from annotation_server.quality.services import open_flags, override_qc
from export.tables import csv_writer

DIMENSIONS = [
    ("site", gettext_lazy("site")),
    ("manufacturer", gettext_lazy("manufacturer")),
    ("model", gettext_lazy("model")),
    ("thickness", gettext_lazy("slice thickness (mm)")),
    ("kvp", gettext_lazy("kVp")),
    ("kernel", gettext_lazy("convolution kernel")),
    ("age_band", gettext_lazy("age band")),
    ("sex", gettext_lazy("sex")),
]

# Photographs (fundus cameras) have no slices, kVp or kernel: their own dimensions.
PHOTO_MODALITIES = frozenset({"OP", "XC"})
PHOTO_DIMENSIONS = [
    ("site", gettext_lazy("site")),
    ("manufacturer", gettext_lazy("camera make")),
    ("model", gettext_lazy("camera model")),
    ("resolution", gettext_lazy("resolution (rows × columns)")),
    ("laterality", gettext_lazy("eye")),
]
EYES = {"R": "OD", "L": "OS"}


def is_photo_project(project) -> bool:
    return bool(PHOTO_MODALITIES & set(project.modalities))


def dimensions(project) -> list:
    return PHOTO_DIMENSIONS if is_photo_project(project) else DIMENSIONS


def _photo_values(cases) -> dict[int, dict]:
    """The photograph dimensions that are not in the case's series row: the eye of
    its first image, as the series panel names it (`study_series.view_of`: the
    laterality the import recorded on the row; the start of the stored header
    only for a row imported before views were recorded)."""
    first: dict[int, Instance] = {}
    for instance in (
        Instance.objects.filter(series_id__in=[c.series_id for c in cases])
        .order_by("series_id", "slice_index", "frame")
        .only("series_id", "laterality", "view_position", "file", "sha256")
    ):
        first.setdefault(instance.series_id, instance)
    out = {}
    for case in cases:
        instance = first.get(case.series_id)
        eye = EYES.get(view_of(instance)["laterality"], "") if instance else ""
        series = case.series
        out[case.pk] = {
            "resolution": (
                f"{series.rows}×{series.columns}" if series.rows and series.columns else ""
            )
            or _("unknown"),
            "laterality": eye or _("unknown"),
        }
    return out


def _age_band(age: int | None) -> str:
    if age is None:
        return _("unknown")
    low = min(age // 10 * 10, 80)
    return f"{low}+" if low == 80 else f"{low}-{low + 9}"


def _rows(project):
    latest = QcReport.objects.filter(case=OuterRef("pk")).order_by("-created_at")
    cases = (
        Case.objects.filter(project=project, is_qualification=False)
        .select_related("site", "series__study")
        .annotate(qc_report_id=Subquery(latest.values("id")[:1]))
        .order_by("code")
    )
    reports = QcReport.objects.in_bulk([c.qc_report_id for c in cases if c.qc_report_id])
    photo = _photo_values(list(cases)) if is_photo_project(project) else {}
    rows = []
    for case in cases:
        series, study = case.series, case.series.study
        report = reports.get(case.qc_report_id)
        half = series.num_instances // 2
        middle = series.instances.order_by("slice_index").values_list("id", flat=True)
        rows.append(
            {
                "case": case,
                "thumbnail_id": next(iter(middle[half : half + 1]), None),
                "report": report,
                "failing": report.failing() if report else [],
                "values": {
                    "site": case.site.code if case.site else _("unknown"),
                    "manufacturer": series.manufacturer or _("unknown"),
                    "model": series.model_name or _("unknown"),
                    "thickness": (
                        f"{series.slice_thickness_mm:g}"
                        if series.slice_thickness_mm
                        else _("unknown")
                    ),
                    "kvp": f"{series.kvp:g}" if series.kvp else _("unknown"),
                    "kernel": series.kernel or _("unknown"),
                    "age_band": _age_band(study.patient_age_years),
                    "sex": study.patient_sex or _("unknown"),
                    **photo.get(case.pk, {}),
                },
            }
        )
    return rows


def _distribution(rows, dims=DIMENSIONS) -> list[dict]:
    out = []
    total = len(rows) or 1
    for key, label in dims:
        counts = Counter(r["values"][key] for r in rows)
        out.append(
            {
                "key": key,
                "label": label,
                "items": [
                    {"value": v, "n": n, "pct": round(100 * n / total)}
                    for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                ],
            }
        )
    return out


@login_required
def qc_page(request, slug: str):
    project = managed_project_or_404(request, slug)
    rows = _rows(project)
    status = request.GET.get("status", "")
    rule = request.GET.get("rule", "")
    shown = [
        r
        for r in rows
        if (not status or r["case"].qc_status == status)
        and (not rule or any(f["rule"] == rule for f in r["failing"]))
    ]
    rules = sorted({f["rule"] for r in rows for f in r["failing"]})
    return render(
        request,
        "quality/qc.html",
        {
            "project": project,
            "rows": shown,
            "total": len(rows),
            "status": status,
            "rule": rule,
            "rules": rules,
            "statuses": Case.QcStatus.choices,
            "distribution": _distribution(rows, dimensions(project)),
            "photo": is_photo_project(project),
            "overridden": attach_overrides(shown),
        },
    )


@login_required
def distribution_csv(request, slug: str):
    project = managed_project_or_404(request, slug)
    rows = _rows(project)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-distribution.csv"'
    writer = csv_writer(response)
    writer.writerow(["dimension", "value", "cases", "percent"])
    for dim in _distribution(rows, dimensions(project)):
        for item in dim["items"]:
            writer.writerow([dim["key"], item["value"], item["n"], item["pct"]])
    return response


@login_required
@require_POST
def override(request, slug: str, case_id: int):
    project = managed_project_or_404(request, slug)
    case = get_object_or_404(Case, pk=case_id, project=project)
    try:
        override_qc(case, by=request.user, reason=request.POST.get("reason", ""))
        messages.success(request, _("QC failure of %(case)s overridden.") % {"case": case.code})
    except (ValidationError, TransitionError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    return redirect("qc", slug=slug)


@login_required
@require_POST
def rerun(request, slug: str):
    project = managed_project_or_404(request, slug)
    ids = list(
        Case.objects.filter(project=project, is_qualification=False)
        .exclude(state=Case.State.FROZEN)
        .values_list("id", flat=True)
    )
    job = jobs.enqueue(
        "qc.check_cases", project=project, user=request.user, params={"case_ids": ids}
    )
    messages.success(request, _("QC re-run queued for %(n)s cases.") % {"n": len(ids)})
    return redirect("qc-rerun-result", slug=slug, job_id=job.pk)


@login_required
def rerun_result(request, slug: str, job_id: int):
    """What a QC re-run changed: per case and rule, the status before and after,
    and the cases already in reading that now fail (flagged to their readers)."""
    project = managed_project_or_hide(request.user, slug)
    job = get_object_or_404(Job, pk=job_id, project=project, kind="qc.check_cases")
    result = job.result or {}
    flags = open_flags(Case.objects.filter(project=project).values_list("id", flat=True))
    return render(
        request,
        "quality/rerun_result.html",
        {
            "project": project,
            "job": job,
            "result": result,
            "changed": result.get("changed", []),
            "rule_changes": result.get("rule_changes", []),
            "flagged": result.get("flagged", []),
            "open_flags": [f for fs in flags.values() for f in fs],
            "reruns": Job.objects.filter(project=project, kind="qc.check_cases").order_by(
                "-created_at"
            )[:10],
        },
    )
