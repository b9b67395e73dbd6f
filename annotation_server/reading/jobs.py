"""Job handlers of the reading app (named in annotation_server/registry.py)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from annotation_server.projects.models import Project
from annotation_server.reading.assignment import assign_project


def assign_job(ctx) -> dict:
    """Job "projects.assign": params {"project_id": id}."""
    by = None
    if ctx.created_by_id:
        by = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    project = Project.objects.get(pk=ctx.params.get("project_id") or ctx.project_id)
    report = assign_project(project, by=by, progress=ctx.progress)
    ctx.log(
        f"{report.assigned_tasks} reads assigned on {len(report.filled_cases)} cases; "
        f"{report.already_full} already full; {len(report.unfilled)} could not be filled"
    )
    for item in report.unfilled:
        ctx.log(f"{item['case']}: {item['reason']}")
    return report.as_dict()
