"""Job handler of the agreement app: `agreement.compute` (takes a project id)."""

from __future__ import annotations

from annotation_server.agreement import services
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Project


def compute_report(ctx) -> dict:
    """Compute (or find current) the project's agreement report."""
    from django.contrib.auth import get_user_model

    project = Project.objects.get(pk=ctx.params["project_id"])
    by = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    ctx.progress(5, "collecting reads")
    job = Job.objects.filter(pk=ctx.job_id).first()
    row = services.store(
        project, by=by, job=job, progress=lambda pct: ctx.progress(pct, "computing agreement")
    )
    ctx.progress(100)
    counts = row.report["counts"]
    ctx.log(
        f"{counts['cases']} cases, {counts['readers']} readers, {counts['findings']} findings "
        f"in {row.seconds:.1f} s"
    )
    return {"report_id": row.pk, "fingerprint": row.fingerprint, **counts}
