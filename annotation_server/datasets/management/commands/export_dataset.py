"""`manage.py export_dataset --project SLUG --version X.Y.Z --format nifdc --out DIR [--bag]`.

Writes the package of a frozen version in one format (the registry in
export/package.py) into DIR, atomically. The sequestered test split is left
out unless --include-sequestered is given (an operator's decision at the
console: the command runs with the server's rights).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation_server.datasets.export_jobs import package_input
from annotation_server.datasets.models import DatasetVersion
from export.package import EXPORTERS, ExportError, write_package, zip_package


class Command(BaseCommand):
    help = "Export a frozen dataset version as a package (NIFDC style or one format)."

    def add_base_argument(self, parser, *args, **kwargs):
        # --version names the dataset version here, not Django's version
        if "--version" in args:
            return
        super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--version", dest="dataset_version", required=True)
        parser.add_argument("--format", default="nifdc", choices=sorted(EXPORTERS))
        parser.add_argument("--out", required=True)
        parser.add_argument("--bag", action="store_true", help="write a BagIt bag (RFC 8493)")
        parser.add_argument("--zip", action="store_true", help="also write a zip next to it")
        parser.add_argument("--include-sequestered", action="store_true")

    def handle(self, *args, **options):
        try:
            version = DatasetVersion.objects.select_related("project").get(
                project__slug=options["project"], version=options["dataset_version"]
            )
        except DatasetVersion.DoesNotExist:
            raise CommandError(
                f"no version {options['dataset_version']} in project {options['project']}"
            )
        if not version.frozen:
            raise CommandError(f"{version} is not frozen; freeze it first (freeze_version)")
        inp = package_input(version, sequestered=options["include_sequestered"])

        def progress(step: str, done: int, total: int) -> None:
            if options["verbosity"] > 1:
                self.stdout.write(f"{step} {done}/{total}")

        try:
            root = write_package(
                inp, Path(options["out"]), options["format"], bag=options["bag"], progress=progress
            )
        except ExportError as exc:
            raise CommandError(str(exc))
        self.stdout.write(f"package: {root}")
        if options["zip"]:
            zip_path = zip_package(root, root.parent / (root.name + ".zip"))
            self.stdout.write(f"zip: {zip_path}")
