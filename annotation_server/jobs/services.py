"""Queueing jobs and driving their Job rows.

A job is a Job row plus a plain function named in the project-level registry
(annotation_server/registry.py, JOB_HANDLERS). `enqueue`
creates the row and dispatches the Celery task after the surrounding
transaction commits, passing only the row's id. The worker claims the row with
a conditional UPDATE (queued -> running), so a job delivered twice runs once.
"""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.module_loading import import_string

from annotation_server import registry
from annotation_server.jobs.models import Job

logger = logging.getLogger(__name__)


class JobContext:
    """What a job handler gets: its row's id, parameters, and progress/log calls."""

    def __init__(self, job: Job):
        self.job_id = job.pk
        self.params = dict(job.params)
        self.project_id = job.project_id
        self.created_by_id = job.created_by_id

    def progress(self, percent: float, message: str | None = None) -> None:
        pct = max(0, min(100, int(percent)))
        Job.objects.filter(pk=self.job_id).update(progress=pct)
        if message:
            self.log(message)

    def log(self, message: str) -> None:
        line = f"{timezone.now().isoformat(timespec='seconds')} {message}\n"
        Job.objects.filter(pk=self.job_id).update(log=Concat(F("log"), Value(line)))


Handler = Callable[[JobContext], dict | None]


@cache
def _handlers() -> dict[str, Handler]:
    """Every job kind and its function, from the project-level registry."""
    return {kind: import_string(path) for kind, path in registry.JOB_HANDLERS.items()}


def job_kinds() -> list[str]:
    return sorted(_handlers())


def enqueue(kind: str, *, params: dict | None = None, project=None, user=None) -> Job:
    """Create a queued Job and dispatch it once the current transaction commits."""
    if kind not in _handlers():
        raise ValueError(f"Unknown job kind {kind!r}; known: {', '.join(job_kinds())}")
    job = Job.objects.create(
        kind=kind,
        params=params or {},
        project=project,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    from annotation_server.jobs.tasks import run_job

    transaction.on_commit(lambda: run_job.delay(job.pk))
    return job


def claim(job_id: int) -> bool:
    """queued -> running, exactly once. Returns False if someone else has it."""
    changed = Job.objects.filter(pk=job_id, state=Job.State.QUEUED).update(
        state=Job.State.RUNNING,
        started_at=timezone.now(),
        worker=socket.gethostname()[:128],
        attempts=F("attempts") + 1,
    )
    return changed == 1


def execute(job_id: int) -> str:
    """Run a queued job to completion; returns its final state."""
    if not claim(job_id):
        state = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
        logger.info("job %s not claimed (state %s)", job_id, state)
        return state or "missing"
    job = Job.objects.get(pk=job_id)
    ctx = JobContext(job)
    try:
        result = _handlers()[job.kind](ctx) or {}
    except Exception as exc:  # the job fails; the worker goes on
        logger.exception("job %s (%s) failed", job_id, job.kind)
        Job.objects.filter(pk=job_id).update(
            state=Job.State.FAILED,
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}",
            finished_at=timezone.now(),
        )
        return Job.State.FAILED
    Job.objects.filter(pk=job_id).update(
        state=Job.State.SUCCEEDED, progress=100, result=result, finished_at=timezone.now()
    )
    return Job.State.SUCCEEDED


def mode_description() -> str:
    if settings.IN_PROCESS_JOBS:
        return "in-process (CELERY_BROKER_URL unset: jobs run inside the web process)"
    return "celery workers via " + settings.CELERY_BROKER_URL.split("@")[-1]
