"""`manage.py measure_findings [--project SLUG]`.

Gives findings saved before measurements existed (or imported without them)
their measurements (long and short axis, volume, HU inside: reading.
measurements), as a save of the outline would have. Idempotent: only findings
without measurements are measured, each by a conditional UPDATE, so a rerun
measures nothing twice and a reader's save meanwhile wins. Findings in a frozen
dataset version are left as they are (they are read-only; the version keeps
what it said at freeze, and its export falls back to the axes the reader typed)
and counted. Prints progress and what it did.

Here rather than in the reading app because which rows are frozen is the
datasets app's knowledge (FrozenRow), and reading may not import it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from annotation_server.datasets.models import FrozenRow
from annotation_server.projects.models import Project
from annotation_server.reading.measurements import measure_missing
from annotation_server.reading.models import Finding

EVERY = 50  # findings between progress lines


class Command(BaseCommand):
    help = "Measure the findings that have no measurements yet (frozen ones are left alone)."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="only this project's findings (its slug)")

    def handle(self, *args, **opts):
        findings = Finding.objects.all()
        if opts["project"]:
            project = Project.objects.filter(slug=opts["project"]).first()
            if project is None:
                raise CommandError(f"no project {opts['project']!r}")
            findings = findings.filter(task__case__project=project)
        frozen = FrozenRow.objects.filter(table_name=Finding._meta.db_table).values("row_id")
        missing = findings.filter(measurements__isnull=True)
        skipped = missing.filter(pk__in=frozen).count()

        def progress(done: int, total: int) -> None:
            if done % EVERY == 0 or done == total:
                self.stdout.write(f"  {done}/{total} findings")

        counts = measure_missing(missing.exclude(pk__in=frozen), progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"{counts['measured']} measured, {counts['unmeasurable']} without an outline "
                f"to measure, {skipped} left alone in frozen versions."
            )
        )
