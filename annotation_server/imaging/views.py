"""Browser pages of the imaging app: the project import page and the report of
each import.

Every import, whatever brought it (browser upload, PACS pull, STOW-RS, the
command line, the demo), leaves an "imaging.imported" audit event with its
summary and the cases it created; "recent imports" lists those events, so the
demo's imports are there too. An upload or PACS pull also has a job whose result
lists each file (the job result points at its event: `event_id`); the report
shows those files when there are any. Imports that failed before they finished
have a failed job and no event, and are listed from the job."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from annotation_server.accounts.models import Site
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.models import Quarantine
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_404

IMPORT_KINDS = ("imaging.import", "imaging.pull_pacs")
RECENT = 20
SOURCES = {
    "upload": gettext_lazy("browser upload"),
    "pacs": gettext_lazy("PACS pull"),
    "stow": gettext_lazy("STOW-RS"),
    "cli": gettext_lazy("command line"),
    "demo": gettext_lazy("demo data"),
    "dimse": gettext_lazy("DICOM listener"),
}
FILE_STATUSES = {
    "rejected": gettext_lazy("rejected"),
    "quarantined": gettext_lazy("quarantined"),
    "duplicate": gettext_lazy("already imported, skipped"),
    "imported": gettext_lazy("imported"),
}


def _person(user) -> str:
    if user is None:
        return "—"
    return (user.get_full_name() or "").strip() or user.get_username()


def _import_events(project):
    return AuditEvent.objects.filter(project_id=project.pk, action="imaging.imported")


def verdict(summary: dict) -> str:
    """One sentence about an import that never contradicts its numbers."""
    files = summary.get("files") or 0
    imported = summary.get("imported") or 0
    duplicates = summary.get("duplicates") or 0
    if files == 0:
        return _("The import contained no file.")
    if imported == files:
        return ngettext(
            "The file was imported.", "Every file was imported (%(n)s files).", files
        ) % {"n": files}
    if imported == 0 and duplicates == files:
        return ngettext(
            "Nothing new: the file had already been imported.",
            "Nothing new: all %(n)s files had already been imported.",
            files,
        ) % {"n": files}
    return ngettext(
        "%(imported)s of %(n)s file imported; the others are listed below.",
        "%(imported)s of %(n)s files imported; the others are listed below.",
        files,
    ) % {"imported": imported, "n": files}


def recent_imports(project, limit: int = RECENT) -> list[dict]:
    """The project's latest imports, newest first: one row per import event,
    plus the import jobs that ended without one (failed, or still running)."""
    events = list(_import_events(project).select_related("actor").order_by("-created_at")[:limit])
    jobs_by_event = {
        job.result.get("event_id"): job
        for job in Job.objects.filter(
            project=project,
            kind__in=IMPORT_KINDS,
            result__event_id__in=[e.pk for e in events],
        )
    }
    rows = [
        {
            "when": e.created_at,
            "event": e,
            "job": jobs_by_event.get(e.pk),
            "summary": e.data,
            "source": SOURCES.get(e.data.get("source"), e.data.get("source") or "—"),
            "site": e.data.get("site") or "",
            "by": _person(e.actor),
            "cases": len(e.data.get("cases") or ()),
            "verdict": verdict(e.data),
        }
        for e in events
    ]
    linked = {j.pk for j in jobs_by_event.values()}
    for job in (
        Job.objects.filter(project=project, kind__in=IMPORT_KINDS)
        .exclude(pk__in=linked)
        .exclude(state=Job.State.SUCCEEDED, result__has_key="event_id")
        .select_related("created_by")
        .order_by("-created_at")[:limit]
    ):
        rows.append(
            {
                "when": job.created_at,
                "event": None,
                "job": job,
                "summary": (job.result or {}).get("summary") or {},
                "source": SOURCES.get(
                    "pacs" if job.kind == "imaging.pull_pacs" else job.params.get("source"),
                    SOURCES["upload"],
                ),
                "site": "",
                "by": _person(job.created_by),
                "cases": len(((job.result or {}).get("summary") or {}).get("cases") or ()),
                "verdict": job.error or job.get_state_display(),
            }
        )
    rows.sort(key=lambda r: r["when"], reverse=True)
    return rows[:limit]


def _last_site(project, user) -> str:
    """The site of this manager's latest import into the project: the import
    page starts with it chosen, so a delivery in several parts keeps its site."""
    for data in (
        _import_events(project)
        .filter(actor=user)
        .order_by("-created_at")
        .values_list("data", flat=True)[:5]
    ):
        if data.get("site"):
            return data["site"]
    return ""


@login_required
def import_page(request, slug: str):
    project = managed_project_or_404(request, slug)
    return render(
        request,
        "imaging/import.html",
        {
            "project": project,
            "sites": Site.objects.all(),
            "recent": recent_imports(project),
            "last_site": _last_site(project, request.user),
            "connections": project.pacs_connections.all(),
            "pacs_form": _pacs_form(),
            "pacs_allowed": settings.REFSET_PACS_ALLOWED_HOSTS,
            "quarantined": Quarantine.objects.filter(
                project=project, status=Quarantine.Status.PENDING
            ).count(),
            "strings": {
                "selected": _("%(n)s file(s) selected, %(mb)s MB"),
                "files": _("files"),
                "imported": _("imported"),
                "duplicates": _("duplicates skipped"),
                "quarantined": _("quarantined"),
                "rejected": _("rejected"),
                "studies": _("new studies"),
                "series": _("new series"),
                "patients": _("patients"),
                "cases": _("new cases"),
                "none": _("Every file was imported."),
                "nothing_new": _("Nothing new: every file had already been imported."),
                "not_imported": _("Files not imported"),
                "open_report": _("Open the full report"),
                "duplicate": _("already imported, skipped"),
                "failed": _("The import failed:"),
                "upload_failed": _(
                    "Upload failed; nothing was imported. Check the connection and try again."
                ),
            },
        },
    )


@login_required
def import_report(request, slug: str, event_id: int):
    """One import: what came in, what did not and why, and the cases it created."""
    project = managed_project_or_404(request, slug)
    event = get_object_or_404(_import_events(project).select_related("actor"), pk=event_id)
    summary = event.data
    job = (
        Job.objects.filter(project=project, kind__in=IMPORT_KINDS, result__event_id=event.pk)
        .order_by("pk")
        .first()
    )
    files = (job.result or {}).get("files") if job else None
    problems = [
        dict(f, status_label=FILE_STATUSES.get(f.get("status"), f.get("status")))
        for f in files or ()
        if f.get("status") != "imported"
    ]
    codes = summary.get("cases") or []
    cases = list(
        Case.objects.filter(project=project, code__in=codes)
        .select_related("series", "site")
        .order_by("code")
    )
    return render(
        request,
        "imaging/import_report.html",
        {
            "project": project,
            "event": event,
            "job": job,
            "summary": summary,
            "source": SOURCES.get(summary.get("source"), summary.get("source") or "—"),
            "by": _person(event.actor),
            "verdict": verdict(summary),
            "files_listed": files is not None,
            "problems": problems,
            "not_imported": (summary.get("files") or 0) - (summary.get("imported") or 0),
            "cases": cases,
        },
    )


@login_required
def import_job_report(request, slug: str, job_id: int):
    """The report of an import job: its import's report once it has one."""
    project = managed_project_or_404(request, slug)
    job = get_object_or_404(Job, project=project, kind__in=IMPORT_KINDS, pk=job_id)
    event_id = (job.result or {}).get("event_id")
    if event_id and _import_events(project).filter(pk=event_id).exists():
        return redirect("import-report", slug=slug, event_id=event_id)
    raise Http404("This import has no report yet.")


def _pacs_form():
    from annotation_server.imaging.pacs_views import PacsConnectionForm

    return PacsConnectionForm()
