"""Serve RefSet for the demo, saying first how it runs (database, jobs, storage).

The server is gunicorn (annotation_server.wsgi), not runserver: it speaks HTTP/1.1
properly (chunked request bodies included) and runs with DEBUG off, so errors show
the site's own pages. One process with several threads (gthread): the embedded
SQLite database takes one writer at a time anyway (BEGIN IMMEDIATE with a timeout,
see settings), in-process jobs run in that one process, and several processes
would each hold their own connections and caches for no gain. The gunicorn process
gets DJANGO_DEBUG=0 and, unless the settings here are production ones,
REFSET_DEMO=1 (plain HTTP, demo keys, the demo banner).
"""

from __future__ import annotations

import os
import sys

from django.conf import settings
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
        parser.add_argument("--threads", type=int, default=8)

    def handle(self, *args, addr: str, threads: int, **options):
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
        self.stdout.write(f"  server:   gunicorn, 1 process x {threads} threads, DEBUG off")
        self.stdout.flush()
        sys.stdout.flush()
        env = dict(os.environ, DJANGO_DEBUG="0")
        if not settings.PRODUCTION:
            env["REFSET_DEMO"] = "1"
        argv = gunicorn_argv(addr, threads)
        os.execve(argv[0], argv, env)  # gunicorn takes over this process (and its signals)


def gunicorn_argv(addr: str, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "annotation_server.wsgi:application",
        "--bind",
        addr,
        "--workers",
        "1",
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        # in-process jobs (imports) run inside requests in the embedded mode
        "--timeout",
        "600",
        "--graceful-timeout",
        "10",
        "--access-logfile",
        "-",
        # no shared ~/.gunicorn/gunicorn.ctl: a second server (tests) must not take it over
        "--no-control-socket",
        "--chdir",
        str(settings.BASE_DIR),
    ]
