"""Browser pages of the imaging app: the project import page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.translation import gettext as _

from annotation_server.accounts.models import Site
from annotation_server.imaging.models import Quarantine
from annotation_server.jobs.models import Job
from annotation_server.projects.permissions import managed_project_or_404


@login_required
def import_page(request, slug: str):
    project = managed_project_or_404(request, slug)
    return render(
        request,
        "imaging/import.html",
        {
            "project": project,
            "sites": Site.objects.all(),
            "recent_jobs": Job.objects.filter(
                project=project, kind__in=("imaging.import", "imaging.pull_pacs")
            )[:10],
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
                "failed": _("The import failed:"),
                "upload_failed": _(
                    "Upload failed; nothing was imported. Check the connection and try again."
                ),
            },
        },
    )


def _pacs_form():
    from annotation_server.imaging.pacs_views import PacsConnectionForm

    return PacsConnectionForm()
