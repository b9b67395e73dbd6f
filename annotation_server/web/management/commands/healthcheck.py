"""`manage.py healthcheck`: the /healthz report of this process's configuration,
for hosts that serve no HTTP (Celery workers, beat, the DICOM listener): run it
with the same environment as the process (REFSET_ROLE, REFSET_WORKER_QUEUES...).
Prints the report as JSON; exit status 1 when a check failed."""

from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand

from annotation_server.web import health


class Command(BaseCommand):
    help = "Check database, broker and storage as /healthz does; exit 1 when one fails."

    def handle(self, *args, **options):
        result = health.report()
        self.stdout.write(json.dumps(result, indent=1, default=str))
        if not result["ok"]:
            sys.exit(1)
