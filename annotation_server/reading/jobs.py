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


def prelabel_job(ctx) -> dict:
    """Job "reading.prelabel" (sent to the inference queue, registry.JOB_QUEUES):
    params {"project_id", "model_version_id", "case_ids": [..] | absent,
    "threshold": float | null}. Idempotent: a re-run replaces only what this job
    stored, and skips cases another run of the same model version covered."""
    from annotation_server.audit import services as audit
    from annotation_server.reading import assist
    from annotation_server.reading.models import AssistModelVersion

    project = Project.objects.get(pk=ctx.params.get("project_id") or ctx.project_id)
    row = AssistModelVersion.objects.get(pk=ctx.params["model_version_id"])
    ctx.log(f"{row.name} {row.version} (sha256 {row.weights_sha256[:12]}) on {project.slug}")
    report = assist.run_prelabel(
        project,
        row,
        case_ids=ctx.params.get("case_ids") or None,
        threshold=ctx.params.get("threshold"),
        job_id=ctx.job_id,
        progress=ctx.progress,
        log=ctx.log,
    )
    by = None
    if ctx.created_by_id:
        by = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    audit.record(
        "assist_model.run",
        actor=by,
        obj=row,
        project_id=project.pk,
        data={"job": ctx.job_id, "threshold": ctx.params.get("threshold"), **report.as_dict()},
    )
    return report.as_dict()


def finetune_job(ctx) -> dict:
    """Job "reading.finetune" (inference queue, registry.JOB_QUEUES): params
    {"project_id", "model", "parent_id", "version", "epochs", "seed", "fraction"}
    (reading.finetune.queue_finetune). Idempotent: a re-run after the new version
    was registered finds it and reports it instead of registering another."""
    from annotation_server.reading import finetune

    by = None
    if ctx.created_by_id:
        by = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    project = Project.objects.get(pk=ctx.params.get("project_id") or ctx.project_id)
    return finetune.run_finetune(
        project, ctx.params, job_id=ctx.job_id, by=by, progress=ctx.progress, log=ctx.log
    )
