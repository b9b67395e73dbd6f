"""The manager's read-only series viewer: any case's images, opened from the QC
page and an import's report, with the reading workstation's own viewer modules
(viewer/sliceview.js and what it uses) and no finding, label or save at all.

The series is served through the same pixel API and streams as the
workstation's, under the same permission (a manager of the project sees its
series); a quarantined image is never part of a series."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, render
from django.utils.translation import get_language
from rest_framework.request import Request

from annotation_server.imaging.api.serializers import SeriesDetailSerializer
from annotation_server.imaging.delivery import series_with_slices
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_404


@login_required
def series_viewer(request, slug: str, case_id: int):
    project = managed_project_or_404(request, slug)
    case = get_object_or_404(
        Case.objects.select_related("series__study", "site"), pk=case_id, project=project
    )
    api_request = Request(request)
    api_request.user = request.user  # a bare Request would answer AnonymousUser
    series = series_with_slices(case.series_id)
    bootstrap = {
        "case": {"id": case.pk, "code": case.code, "state": case.state},
        "project": {"slug": project.slug, "name": project.name},
        "series": SeriesDetailSerializer(series, context={"request": api_request}).data,
        "schema": project.label_schema.definition,
        "writable": False,
        "task": None,
        "lang": "zh-hans" if (get_language() or "").lower().startswith("zh") else "en",
        "urls": {"api": "/api/v1/"},
    }
    back = request.GET.get("from")
    return render(
        request,
        "imaging/series_viewer.html",
        {
            "project": project,
            "case": case,
            "series": series,
            "bootstrap": bootstrap,
            "back": back if back in ("qc", "import") else "qc",
        },
    )
