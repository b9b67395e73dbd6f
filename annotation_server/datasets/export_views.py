"""Pages for exporting a frozen version: start an export job, download its zip.

Both answer 404 to anyone who does not manage the version's project; a
package holding the sequestered test split is downloadable only by managers
who may see that split. The zip is streamed from the default storage (the
export job stored it there), so any web node serves a zip any worker wrote.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from annotation_server.datasets import export_jobs
from annotation_server.datasets.models import DatasetVersion
from annotation_server.datasets.querysets import may_see_sequestered
from annotation_server.imaging import storage
from annotation_server.jobs.models import Job


class StoredFileResponse(FileResponse):
    """A FileResponse read in 256 KiB blocks (a stored object's body arrives over
    the network; 4 KiB reads would cost a system call per 4 KiB sent)."""

    block_size = 1 << 18


def _version(request, slug: str, version: str) -> DatasetVersion:
    return get_object_or_404(
        DatasetVersion.objects.visible_to(request.user).select_related("project"),
        project__slug=slug,
        version=version,
    )


def export_jobs_for(version: DatasetVersion, user) -> list[Job]:
    """The version's export jobs this user may see (newest first)."""
    rows = Job.objects.filter(
        kind=export_jobs.JOB_KIND, project=version.project, params__version_id=version.pk
    ).order_by("-created_at")[:20]
    if may_see_sequestered(user):
        return list(rows)
    return [job for job in rows if not job.params.get("sequestered")]


@login_required
@require_POST
def export_start(request, slug: str, version: str):
    dv = _version(request, slug, version)
    fmt = request.POST.get("format", "nifdc")
    job = export_jobs.queue_export(
        dv, user=request.user, fmt=fmt, bag=bool(request.POST.get("bag"))
    )
    messages.success(request, _("Export started (job %(id)s).") % {"id": job.pk})
    # Always back to the version page: a `next` taken from the form would be an open redirect.
    return redirect("datasets:version", slug=dv.project.slug, version=dv.version)


@login_required
@require_GET
def export_download(request, slug: str, version: str, job_id: int):
    dv = _version(request, slug, version)
    job = get_object_or_404(
        Job, pk=job_id, kind=export_jobs.JOB_KIND, project=dv.project, params__version_id=dv.pk
    )
    if job.params.get("sequestered") and not may_see_sequestered(request.user):
        raise Http404
    stored = export_jobs.stored_zip(job)
    if stored is None:
        raise Http404
    key, filename = stored
    try:
        body, size = storage.open_stream(key)
    except FileNotFoundError:
        raise Http404 from None
    # Streamed in blocks as it is read from the storage; never whole in memory.
    response = StoredFileResponse(
        body, as_attachment=True, filename=filename, content_type="application/zip"
    )
    response["Content-Length"] = str(size)
    return response
