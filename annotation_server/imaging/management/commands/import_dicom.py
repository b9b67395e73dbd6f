"""python manage.py import_dicom PATH [PATH ...] --project SLUG [--site CODE]

Imports files, folders and zips (recursively): validates, de-identifies, stores
and indexes them, then prints a summary and every rejected file with its reason.
Photographs (JPEG, PNG, TIFF, recognised by content) need a manifest.csv among the
paths (columns filename, patient_id, visit_id, laterality, optional site, camera;
see imaging.photo.manifest and imaging.ingest.photos); they are reported by their
manifest line, never by their file name.
Exit status: 0 when nothing was rejected, 1 when some files were, 2 on a usage error.
"""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from annotation_server.accounts.models import Site
from annotation_server.imaging.ingest.pipeline import default_limits, ingest
from annotation_server.imaging.ingest.sources import from_paths
from annotation_server.imaging.management.console import print_report, progress_bar
from annotation_server.projects.models import Project


class UsageError(CommandError):
    def __init__(self, message: str):
        super().__init__(message, returncode=2)


class Command(BaseCommand):
    help = (
        "Import DICOM files, folders or zips into a project (de-identified on the way in); "
        "JPEG/PNG/TIFF photographs with a manifest.csv (filename, patient_id, visit_id, "
        "laterality) among the paths."
    )

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH")
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--site", help="site code of the delivering institution")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.error = lambda message: self._usage(parser, message)
        return parser

    def _usage(self, parser, message):
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)

    def handle(self, *args, paths, project, site, quiet, **options):
        try:
            project_obj = Project.objects.get(slug=project)
        except Project.DoesNotExist:
            raise UsageError(f"no project with slug {project!r}") from None
        site_obj = None
        if site:
            site_obj = Site.objects.filter(code=site).first()
            if site_obj is None:
                raise UsageError(f"no site with code {site!r}")
        started = time.monotonic()
        show = not quiet and self.stdout.isatty()

        progress = progress_bar(self, show)

        report = ingest(
            project_obj,
            from_paths(paths, default_limits()),
            site=site_obj,
            source="cli",
            progress=progress,
        )
        if show:
            self.stdout.write("")
        print_report(self, report, time.monotonic() - started)
        if not report.ok:
            sys.exit(1)
