"""`manage.py run_periodic [name ...]`: run periodic jobs now, in this process.

Without a broker (the embedded demo) nothing sends beat's schedule: run this
from cron instead (e.g. `run_periodic overdue_reminders cleanup` hourly,
`run_periodic verify_audit` nightly). With no name it runs every periodic job
(web/periodic.py PERIODIC). Each run is a Job row like any other; the exit
status is 1 when a job failed or the audit chain was found broken.
"""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from annotation_server.jobs.models import Job
from annotation_server.web import periodic


class Command(BaseCommand):
    help = "Run periodic jobs now (overdue reminders, audit verification, cleanup)."

    def add_arguments(self, parser):
        parser.add_argument(
            "names", nargs="*", help=f"which ones (default all): {', '.join(periodic.PERIODIC)}"
        )

    def handle(self, *args, **options):
        names = options["names"] or list(periodic.PERIODIC)
        unknown = [n for n in names if n not in periodic.PERIODIC]
        if unknown:
            raise CommandError(
                f"Unknown periodic job(s): {', '.join(unknown)}. "
                f"Known: {', '.join(periodic.PERIODIC)}."
            )
        bad = False
        for name in names:
            job = periodic.run_now(name)
            if job.state != Job.State.SUCCEEDED:
                bad = True
                first = (job.error.splitlines() or [""])[0]
                self.stderr.write(f"{name}: job {job.pk} {job.state}: {first}")
                continue
            if job.result.get("ok") is False:
                bad = True
                self.stderr.write(f"{name}: job {job.pk}: {job.result.get('problem')}")
                continue
            summary = json.dumps(job.result, ensure_ascii=False, default=str)
            if len(summary) > 400:
                summary = summary[:400] + "…"
            self.stdout.write(f"{name}: job {job.pk} succeeded: {summary}")
        if bad:
            sys.exit(1)
