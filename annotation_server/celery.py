"""The Celery application. Tasks live in each app's tasks.py (thin wrappers)."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_server.settings")

app = Celery("refset")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def recover_jobs_of_dead_workers(sender=None, **kwargs) -> None:
    """Every worker, from its start and every half job lease, dispatches again the
    jobs left running by a worker that died (jobs.services.recover_stale)."""
    from annotation_server.jobs.services import start_recovery

    start_recovery()
