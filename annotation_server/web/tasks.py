"""Celery entry point of the periodic jobs: beat sends `refset.periodic(name)`
(settings.CELERY_BEAT_SCHEDULE); the worker queues that job (web/periodic.py)."""

from celery import shared_task

from annotation_server.web import periodic


@shared_task(name="refset.periodic", acks_late=True)
def run_periodic(name: str) -> str:
    job = periodic.enqueue(name)
    return f"job {job.pk}" if job is not None else "skipped (one still queued or running)"
