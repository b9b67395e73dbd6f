"""The manager's assignment page: who reads what, per-reader load, the
"run assignment" job and reassignment when a reader drops out."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation_server.jobs.models import Job
from annotation_server.projects.permissions import managed_project_or_404
from annotation_server.reading import assignment
from annotation_server.reading.console_views import back
from annotation_server.reading.models import ReadingTask


@login_required
def assignments_page(request, slug: str):
    project = managed_project_or_404(request, slug)
    data = assignment.overview(project)
    options = assignment.reassign_options(project)
    for case in data["cases"]:
        for read in case["reads"]:
            read["candidates"] = options.get(read["task_id"], [])
    last_job = Job.objects.filter(project=project, kind="projects.assign").first()
    return render(
        request,
        "reading/assignments.html",
        {"project": project, "data": data, "last_job": last_job},
    )


@login_required
@require_POST
def run(request, slug: str):
    project = managed_project_or_404(request, slug)
    job = assignment.enqueue_assignment(project, by=request.user)
    messages.success(request, _("Assignment queued (job %(id)s).") % {"id": job.pk})
    return redirect("assignments", slug=slug)


@login_required
@require_POST
def reassign(request, slug: str, task_id: int):
    project = managed_project_or_404(request, slug)
    task = get_object_or_404(ReadingTask, pk=task_id, case__project=project)
    new_reader = get_user_model().objects.filter(pk=request.POST.get("reader") or 0).first()
    if new_reader is None:
        messages.error(request, _("Choose the reader who takes the read over."))
        return redirect("assignments", slug=slug)
    try:
        new = assignment.reassign(
            task, new_reader, by=request.user, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("Case %(case)s now goes to %(reader)s; the previous draft was discarded.")
            % {"case": new.case.code, "reader": new_reader.profile.pseudonym},
        )
    if request.POST.get("next"):
        return back(request, slug)
    return redirect("assignments", slug=slug)
