"""The reading workstation page and the "next case" jump from the worklist.

The page is one template plus static ES modules (frontend_templates/static/refset/
viewer/). Everything the page starts with is built here from the same blinded
querysets and serializers as the REST API: the reader's own task, case, series
geometry, own findings and case labels. Other readers' marks are never in the
page; in an unblinded review phase the browser asks the findings API for them,
and `visible_to` decides.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from annotation_server.imaging.api.serializers import SeriesDetailSerializer
from annotation_server.imaging.delivery import series_with_slices
from annotation_server.projects.api.serializers import CaseSerializer
from annotation_server.projects.models import Case
from annotation_server.reading.api.serializers import (
    CaseLabelSerializer,
    FindingSerializer,
    ReadingTaskSerializer,
)
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from annotation_server.reading.pages import schema_language, serializer_context


def open_tasks(user, project: str | None = None):
    """The reader's open real reads in worklist order: in progress, then assigned,
    earliest due first; only cases still open for reading."""
    tasks = (
        ReadingTask.objects.operational()
        .filter(reader=user, case__state=Case.State.READING)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .in_worklist_order()
    )
    if project:
        tasks = tasks.filter(case__project__slug=project)
    return tasks


@login_required
def next_task(request):
    """One key from the worklist: open the next read, or say there is none."""
    project = request.GET.get("project") or None
    after = request.GET.get("after")
    tasks = open_tasks(request.user, project)
    if after and after.isdigit():
        tasks = tasks.exclude(pk=int(after))
    task = tasks.first()
    if task is None:
        messages.info(request, _("No open reads left. Well done."))
        url = reverse("worklist")
        return redirect(f"{url}?project={project}" if project else url)
    return redirect("workstation", task_id=task.pk)


@never_cache
@login_required
def workstation(request, task_id: int):
    """The reading workstation for one of the reader's own tasks."""
    task = get_object_or_404(
        ReadingTask.objects.visible_to(request.user)
        .filter(reader=request.user)
        .select_related("case__project__label_schema", "case__project__protocol", "case__series"),
        pk=task_id,
    )
    case = task.case
    project = case.project
    protocol = getattr(project, "protocol", None)
    context = serializer_context(request)
    series = series_with_slices(case.series_id)
    findings = Finding.objects.visible_to(request.user).filter(task=task).order_by("created_at")
    label = CaseLabel.objects.visible_to(request.user).filter(task=task).first()
    writable = task.state != ReadingTask.State.SUBMITTED and (
        case.is_qualification or case.state == Case.State.READING
    )
    bootstrap = {
        "task": ReadingTaskSerializer(task, context=context).data,
        "case": CaseSerializer(case, context=context).data,
        "project": {"slug": project.slug, "name": project.name},
        "series": SeriesDetailSerializer(series, context=context).data,
        "schema": project.label_schema.definition,
        "findings": FindingSerializer(findings, many=True, context=context).data,
        "case_label": CaseLabelSerializer(label).data
        if label
        else {"values": {}, "version": 0, "updated_at": None},
        "writable": writable,
        "review": task.phase == 2 and bool(protocol and protocol.review_phase),
        # Whether this read is shown model proposals (its phase, the no-assistance arm).
        "proposals_enabled": bool(
            protocol
            and protocol.proposals_shown_in(task.phase)
            and not protocol.case_unassisted(case.pk)
        ),
        "proposal_min_confidence": float(protocol.prelabel_min_confidence) if protocol else 0.0,
        "lang": schema_language(),
        "urls": {
            "api": "/api/v1/",
            "worklist": reverse("worklist"),
            # a qualification read goes on within its attempt, on the qualification page
            "next": reverse("qualification", args=[project.slug])
            if task.attempt_id
            else f"{reverse('worklist-next')}?after={task.pk}",
        },
    }
    return render(
        request,
        "reading/workstation.html",
        {"task": task, "case": case, "project": project, "bootstrap": bootstrap},
    )
