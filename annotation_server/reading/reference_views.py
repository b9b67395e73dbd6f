"""A reference series: another image series of the study of a case being read,
opened from the workstation's series panel for looking only.

The page is the read-only series viewer (viewer/seriesview.js: slices, window,
pan, zoom; nothing to draw, select or save) under the reader's own task, marked
"reference series, not being read", one click from the case's own series. Who
may open it: the reader of the task, for a series `Series.objects.visible_to`
lets them see in the same study as the task's case (imaging/querysets.py: the
other image series of that study). The case's own series opens the workstation.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache

from annotation_server.imaging.api.serializers import SeriesDetailSerializer
from annotation_server.imaging.delivery import series_with_slices
from annotation_server.imaging.models import Series
from annotation_server.imaging.querysets import NON_IMAGE_MODALITIES
from annotation_server.reading.models import ReadingTask
from annotation_server.reading.pages import schema_language, serializer_context


@never_cache
@login_required
def reference_series(request, task_id: int, pk: int):
    task = get_object_or_404(
        ReadingTask.objects.visible_to(request.user)
        .filter(reader=request.user)
        .select_related("case__project__label_schema", "case__series"),
        pk=task_id,
    )
    case = task.case
    if pk == case.series_id:
        return redirect("workstation", task_id=task.pk)
    get_object_or_404(
        Series.objects.visible_to(request.user)
        .filter(study_id=case.series.study_id)
        .exclude(modality__in=NON_IMAGE_MODALITIES),
        pk=pk,
    )
    series = series_with_slices(pk)
    project = case.project
    bootstrap = {
        "case": {"id": case.pk, "code": case.code},
        "project": {"slug": project.slug, "name": project.name},
        "series": SeriesDetailSerializer(series, context=serializer_context(request)).data,
        "schema": project.label_schema.definition,
        "writable": False,
        "task": None,
        "lang": schema_language(),
        "urls": {"api": "/api/v1/"},
    }
    return render(
        request,
        "reading/reference_series.html",
        {
            "task": task,
            "case": case,
            "project": project,
            "series": series,
            "bootstrap": bootstrap,
        },
    )
