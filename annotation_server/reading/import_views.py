"""The manager's page for bringing existing reads in (LIDC-IDRI XML, RefSet
JSON) and taking them out (RefSet JSON). Each uploaded file imports whole or
not at all; the page shows every file's report."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation_server.audit import services as audit
from annotation_server.projects.permissions import managed_project_or_404
from annotation_server.reading.importers.services import FORMATS, export_reads, import_files

MAX_FILES = 200


@login_required
def import_reads_page(request, slug: str):
    project = managed_project_or_404(request, slug)
    reports, problem = [], ""
    chosen = ""
    if request.method == "POST":
        chosen = request.POST.get("format", "")
        fmt = chosen if chosen in FORMATS else None
        files = request.FILES.getlist("files")
        if not files:
            problem = _("Choose at least one file.")
        elif len(files) > MAX_FILES:
            problem = _("At most %(n)s files at a time.") % {"n": MAX_FILES}
        else:
            reports = import_files(
                project, [(f.name, f.read()) for f in files], fmt, actor=request.user
            )
    status = 400 if problem else 200
    return render(
        request,
        "reading/import_reads.html",
        {
            "project": project,
            "protocol": project.protocol,
            "reports": reports,
            "imported": sum(r.imported for r in reports),
            "refused": sum(not r.imported for r in reports),
            "problem": problem,
            "formats": FORMATS,
            "chosen": chosen,
        },
        status=status,
    )


@login_required
def export_reads_download(request, slug: str):
    project = managed_project_or_404(request, slug)
    document = export_reads(project)
    audit.record(
        "reads.exported",
        actor=request.user,
        obj=project,
        project_id=project.pk,
        data={
            "cases": len(document["cases"]),
            "reads": sum(len(c["reads"]) for c in document["cases"]),
        },
    )
    response = HttpResponse(
        json.dumps(document, indent=1, ensure_ascii=False), content_type="application/json"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-reads-{stamp}.json"'
    return response
