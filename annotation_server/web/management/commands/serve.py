"""Serve RefSet for the demo, saying first how it runs (database, jobs, storage)."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from annotation_server.jobs.services import mode_description


def describe_mode() -> list[str]:
    db = settings.DATABASES["default"]
    if settings.EMBEDDED_DATABASE:
        database = f"embedded SQLite at {db['NAME']} (DATABASE_URL is unset; demo only)"
    else:
        database = (
            f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST')}:{db.get('PORT')}/{db['NAME']}"
        )
    return [
        f"database: {database}",
        f"jobs:     {mode_description()}",
        f"storage:  {settings.STORAGES['default']['BACKEND']} ({settings.MEDIA_ROOT})",
    ]


class Command(BaseCommand):
    help = "Run the web server after printing how RefSet is configured."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000")

    def handle(self, *args, addr: str, **options):
        self.stdout.write(self.style.MIGRATE_HEADING("RefSet starting"))
        for line in describe_mode():
            self.stdout.write(f"  {line}")
        if settings.EMBEDDED_DATABASE or settings.IN_PROCESS_JOBS:
            self.stdout.write(
                self.style.WARNING(
                    "  embedded mode: fine for a demo; set DATABASE_URL and CELERY_BROKER_URL "
                    "for real use."
                )
            )
        self.stdout.write(f"  open http://{addr}/")
        call_command("runserver", addr, use_reloader=False)
