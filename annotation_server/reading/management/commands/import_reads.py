"""python manage.py import_reads PATH [PATH ...] --project SLUG [--format lidc-xml|refset-json]

Imports existing reads as submitted reads: LIDC-IDRI XML (LidcReadMessage) or
RefSet's JSON read format. A PATH may be a file or a folder (its .xml and .json
files, recursively). Each file imports whole or not at all; the report lists
per file its cases, reads, findings, unmatched images, unknown series and
errors. Exit status: 0 when every file imported, 1 when some were refused,
2 on a usage error.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from annotation_server.projects.models import Project
from annotation_server.reading.importers.services import FORMATS, import_file


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in (".xml", ".json")))
        elif path.is_file():
            out.append(path)
        else:
            raise CommandError(f"{raw}: no such file or folder", returncode=2)
    return out


class Command(BaseCommand):
    help = "Import existing reads (LIDC-IDRI XML or RefSet JSON) as submitted reads."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument(
            "--format", choices=FORMATS, help="file format (default: from the file's name)"
        )
        parser.add_argument("--as-user", help="username recorded as the importer in the audit log")
        parser.add_argument("--json", action="store_true", help="print the reports as JSON")

    def handle(self, *args, paths, project, format, as_user, json: bool, **options):
        try:
            project_obj = Project.objects.select_related("protocol", "label_schema").get(
                slug=project
            )
        except Project.DoesNotExist:
            raise CommandError(f"no project with slug {project!r}", returncode=2) from None
        actor = None
        if as_user:
            actor = get_user_model().objects.filter(username=as_user).first()
            if actor is None:
                raise CommandError(f"no user {as_user!r}", returncode=2)
        files = _files(paths)
        if not files:
            raise CommandError("no .xml or .json file found", returncode=2)
        reports = [
            import_file(project_obj, str(p), p.read_bytes(), format, actor=actor) for p in files
        ]
        if json:
            self.stdout.write(_dumps([r.as_dict() for r in reports]))
        else:
            for r in reports:
                self._print(r)
            ok = sum(r.imported for r in reports)
            self.stdout.write(
                f"{ok} of {len(reports)} files imported: "
                f"{sum(r.reads for r in reports)} reads, "
                f"{sum(r.findings for r in reports)} findings."
            )
        if any(not r.imported for r in reports):
            raise CommandError("some files were refused", returncode=1)

    def _print(self, r) -> None:
        state = "imported" if r.imported else "REFUSED"
        self.stdout.write(f"{r.name} [{r.format}]: {state}")
        if r.imported:
            self.stdout.write(
                f"  cases {', '.join(r.cases)}; {r.reads} reads, {r.findings} findings; "
                f"readers {', '.join(r.readers)}"
            )
            if r.settling:
                self.stdout.write(f"  queued for settling: {', '.join(r.settling)}")
        for label, items in (
            ("unknown series", r.unknown_series),
            ("unmatched image", r.unmatched_instances),
            ("error", r.errors),
            ("warning", r.warnings),
        ):
            for item in items:
                self.stdout.write(f"  {label}: {item}")


def _dumps(data) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
