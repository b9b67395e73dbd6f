"""python manage.py export_reads --project SLUG --out FILE

Writes the project's submitted reads in RefSet's JSON read format (the format
`import_reads --format refset-json` reads back), readers as pseudonyms only.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation_server.audit import services as audit
from annotation_server.projects.models import Project
from annotation_server.reading.importers.services import export_reads


class Command(BaseCommand):
    help = "Export a project's submitted reads as RefSet JSON (reads move between instances)."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--out", required=True, help="file to write ('-': standard output)")

    def handle(self, *args, project, out, **options):
        try:
            project_obj = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {project!r}", returncode=2) from None
        document = export_reads(project_obj)
        text = json.dumps(document, indent=1, ensure_ascii=False)
        reads = sum(len(c["reads"]) for c in document["cases"])
        audit.record(
            "reads.exported",
            obj=project_obj,
            project_id=project_obj.pk,
            data={"cases": len(document["cases"]), "reads": reads, "to": out},
        )
        if out == "-":
            self.stdout.write(text)
            return
        Path(out).write_text(text + "\n", encoding="utf-8")
        self.stdout.write(f"{len(document['cases'])} cases, {reads} reads written to {out}")
