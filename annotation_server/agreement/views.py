"""The project agreement page, its downloads (JSON, CSV, PNG/SVG figures),
its settings and the request to compute. Managers only; hidden from anyone who
still holds a blind read of the project (services.project_for_figures)."""

from __future__ import annotations

import base64

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from annotation_server.agreement import services
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job

DIMENSION_LABELS = {
    "site": gettext_lazy("site"),
    "manufacturer": gettext_lazy("manufacturer"),
    "thickness_band": gettext_lazy("slice-thickness band"),
    "finding_type": gettext_lazy("finding type"),
    "size_band": gettext_lazy("size band"),
    "experience_band": gettext_lazy("reader experience band"),
}


def _running_job(project):
    return (
        Job.objects.filter(project=project, kind="agreement.compute")
        .exclude(state__in=Job.FINISHED)
        .order_by("-created_at")
        .first()
    )


def _current(project):
    row = services.latest(project)
    if row is None:
        return None, None
    return row, services.decorate(row.report, services.settings_for(project).flag_below)


@login_required
def agreement_page(request, slug: str):
    project = services.project_for_figures(request, slug)
    row, report = _current(project)
    stale = row is not None and row.fingerprint != services.fingerprint(project)
    figures = {}
    if report is not None:
        figures = {
            name: base64.b64encode(png).decode()
            for name, png in services.figures(report, "png").items()
        }
    names = {r["id"]: r["label"] for r in report["readers"]} if report else {}
    context = {
        "project": project,
        "row": row,
        "report": report,
        "stale": stale,
        "job": _running_job(project),
        "settings": services.settings_for(project),
        "figures": figures,
        "names": names,
        "dimension_labels": {str(k): str(v) for k, v in DIMENSION_LABELS.items()},
        "photographs": services.is_photograph_project(project),
        "type_labels": services.finding_type_labels(project),
        "field_labels": services.field_labels(project),
    }
    return render(request, "agreement/report.html", context)


@login_required
@require_POST
def compute(request, slug: str):
    project = services.project_for_figures(request, slug)
    if _running_job(project) is None:
        jobs.enqueue(
            "agreement.compute",
            project=project,
            user=request.user,
            params={"project_id": project.pk},
        )
        messages.success(request, _("Agreement computation queued."))
    else:
        messages.info(request, _("The agreement report is already being computed."))
    return redirect("agreement", slug=slug)


@login_required
@require_POST
def update_settings(request, slug: str):
    project = services.project_for_figures(request, slug)
    current = services.settings_for(project)
    post = request.POST
    try:
        services.update_settings(
            project,
            request.user,
            flag_below=float(post.get("flag_below", "0.8")),
            replicates=int(post.get("replicates", "1000")),
            stratify_by=post.get("stratify_by", ""),
            nsd_tolerance_mm=float(post.get("nsd_tolerance_mm", "1.0")),
            lesion_point_radius_px=float(
                post.get("lesion_point_radius_px", current.lesion_point_radius_px)
            ),
            lesion_region_rule=post.get("lesion_region_rule", current.lesion_region_rule),
            lesion_region_threshold=float(
                post.get("lesion_region_threshold", current.lesion_region_threshold)
            ),
        )
        messages.success(request, _("Agreement settings saved."))
    except (ValueError, ValidationError) as exc:
        text = " ".join(getattr(exc, "messages", [])) or _("Enter numbers in the allowed ranges.")
        messages.error(request, text)
    return redirect("agreement", slug=slug)


def _report_or_404(request, slug):
    project = services.project_for_figures(request, slug)
    _row, report = _current(project)
    if report is None:
        raise Http404(_("No agreement report has been computed for this project yet."))
    return project, report


@login_required
def report_json(request, slug: str):
    project, report = _report_or_404(request, slug)
    response = JsonResponse(report, json_dumps_params={"ensure_ascii": False, "indent": 1})
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-agreement.json"'
    return response


@login_required
def report_csv(request, slug: str):
    project, report = _report_or_404(request, slug)
    response = HttpResponse(services.csv_text(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-agreement.csv"'
    return response


def _figure(request, slug: str, fmt: str):
    """One plot: ?name=heatmap|detection|lidc|weekly|bland-altman-...; ?download=1
    makes it an attachment."""
    project, report = _report_or_404(request, slug)
    name = request.GET.get("name", "heatmap")
    images = services.figures(report, fmt)
    if name not in images:
        raise Http404(_("This report has no such figure."))
    content_type = "image/png" if fmt == "png" else "image/svg+xml"
    response = HttpResponse(images[name], content_type=content_type)
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="{project.slug}-{name}.{fmt}"'
    return response


@login_required
def figure_png(request, slug: str):
    return _figure(request, slug, "png")


@login_required
def figure_svg(request, slug: str):
    return _figure(request, slug, "svg")
