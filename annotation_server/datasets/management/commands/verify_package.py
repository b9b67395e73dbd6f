"""`manage.py verify_package DIR`: re-hash a dataset package; exit 0 only when it is whole."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from export.verify import verify


class Command(BaseCommand):
    help = "Check a dataset package against its MANIFEST.sha256 and manifest.json."

    def add_arguments(self, parser):
        parser.add_argument("directory", help="the package directory (or BagIt bag)")

    def handle(self, *args, **options):
        root = Path(options["directory"])
        if not root.is_dir():
            raise CommandError(f"{root}: not a directory")
        problems = verify(root)
        if problems:
            for problem in problems:
                self.stderr.write(problem)
            raise CommandError(f"{root}: {len(problems)} problem(s); first: {problems[0]}")
        self.stdout.write(f"{root}: every file matches MANIFEST.sha256 and manifest.json")
