"""Job handlers of the imaging app."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage

from annotation_server.accounts.models import Site
from annotation_server.imaging.ingest.pipeline import default_limits, ingest
from annotation_server.imaging.ingest.uploads import stored_uploads
from annotation_server.projects.models import Project


def import_uploads(ctx) -> dict:
    """Import files uploaded to storage under params["uploads"], then delete them."""
    project = Project.objects.get(pk=ctx.project_id)
    site = Site.objects.filter(pk=ctx.params.get("site_id")).first()
    uploads = ctx.params["uploads"]
    ctx.log(f"importing {len(uploads)} uploaded file(s) into {project.slug}")

    from django.contrib.auth import get_user_model

    user = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    try:
        with stored_uploads(uploads, default_limits()) as items:
            report = ingest(
                project,
                items,
                site=site,
                user=user,
                source="upload",
                progress=lambda done, total: ctx.progress(95 * done / max(total, 1)),
                workers=_workers(),
            )
    finally:
        for upload in uploads:
            default_storage.delete(upload["key"])
    _log_report(ctx, report)
    return report.as_dict()


def _workers() -> int | None:
    """Worker processes for an import job: the setting's, except where jobs run
    inside the web process (the embedded demo), which is never forked."""
    return 1 if settings.IN_PROCESS_JOBS else None


def _log_report(ctx, report) -> None:
    s = report.summary()
    ctx.log(
        f"{s['imported']} imported, {s['duplicates']} duplicates, "
        f"{s['quarantined']} quarantined, {s['rejected']} rejected "
        f"(prepared in {report.workers} process{'es' if report.workers > 1 else ''})"
    )


def pull_pacs(ctx) -> dict:
    """Retrieve studies from a saved PACS connection and import them."""
    from django.contrib.auth import get_user_model

    from annotation_server.imaging.models import PacsConnection
    from annotation_server.imaging.pacs import pull

    connection = PacsConnection.objects.get(pk=ctx.params["connection_id"])
    uids = ctx.params["study_uids"]
    ctx.log(f"retrieving {len(uids)} stud(ies) from {connection.address}")
    user = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    report = pull(
        connection.project,
        connection,
        uids,
        user=user,
        site=connection.site,
        progress=lambda done, total: ctx.progress(95 * done / max(total, 1)),
        workers=_workers(),
    )
    _log_report(ctx, report)
    return report.as_dict()


def build_series_streams(ctx) -> dict:
    """Decode new series once, right after import, so the viewer's first fetch
    is already a stored stream."""
    from annotation_server.imaging.delivery import build_series_stream
    from annotation_server.imaging.models import Series

    ids = ctx.params["series_ids"]
    built = 0
    for done, series in enumerate(Series.objects.filter(pk__in=ids), 1):
        built += int(build_series_stream(series))
        ctx.progress(100 * done / max(len(ids), 1))
    ctx.log(f"{built} series stream(s) built, {len(ids) - built} already stored")
    return {"built": built, "series": len(ids)}
