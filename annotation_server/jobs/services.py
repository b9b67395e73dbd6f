"""Queueing jobs and driving their Job rows.

A job is a Job row plus a plain function named in the project-level registry
(annotation_server/registry.py, JOB_HANDLERS). `enqueue`
creates the row and dispatches the Celery task after the surrounding
transaction commits, passing only the row's id. The worker claims the row with
a conditional UPDATE (queued -> running), so a job delivered twice runs once.

Workers die (killed for memory, a host reboot, SIGKILL). A running job holds a
lease: its worker renews Job.heartbeat_at from a background thread every third
of REFSET_JOB_LEASE_S. A running row whose lease ran out belongs to a dead
worker, and the claim takes it over as it would a queued one (a new attempt,
with a line in the log). Who delivers it again: every worker, when it starts
and then every half lease, looks for such rows and dispatches them again
(`recover_stale`); a broker that redelivers the unacknowledged message does the
same. After REFSET_JOB_MAX_ATTEMPTS starts the job is failed with a clear error
instead, so a job that kills its worker cannot do so forever. Every state
change after the claim is conditional on the claim's owner token (Job.worker),
so a worker that was presumed dead but was not cannot overwrite its successor.
Handlers must therefore be idempotent: a re-run repeats the work of an attempt
cut off anywhere.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone, translation
from django.utils.module_loading import import_string

from annotation_server import registry
from annotation_server.jobs.models import Job

logger = logging.getLogger(__name__)

# REFSET_TEST_JOB_DELAY_S, REFSET_TEST_JOB_DELAY_AT (tests only; never set them
# elsewhere): at the DELAY_AT-th JobContext.progress/log call of a job, log a
# line that says so and sleep DELAY_S seconds, so a fault test can kill the
# worker at a known point in the middle of a real job (tests/faults/). DELAY_AT:
# "kind=N,kind=N" (other kinds, such as the follow-up jobs an import queues, never
# wait), or one N for every kind. Only a job's first attempt waits: the worker
# that takes it over runs it through.
TEST_DELAY_ENV = "REFSET_TEST_JOB_DELAY_S"
TEST_DELAY_AT_ENV = "REFSET_TEST_JOB_DELAY_AT"


def lease_seconds() -> float:
    return float(getattr(settings, "REFSET_JOB_LEASE_S", 120))


def max_attempts() -> int:
    return int(getattr(settings, "REFSET_JOB_MAX_ATTEMPTS", 3))


class JobContext:
    """What a job handler gets: its row's id, parameters, and progress/log calls."""

    def __init__(self, job: Job):
        self.job_id = job.pk
        self.params = dict(job.params)
        self.project_id = job.project_id
        self.created_by_id = job.created_by_id
        self.kind = job.kind
        self.attempt = job.attempts
        self._calls = 0

    def progress(self, percent: float, message: str | None = None) -> None:
        pct = max(0, min(100, int(percent)))
        Job.objects.filter(pk=self.job_id).update(progress=pct)
        if message:
            self.log(message)
        else:
            self._test_delay()

    def log(self, message: str) -> None:
        _append_log(self.job_id, message)
        self._test_delay()

    def _test_delay(self) -> None:
        self._calls += 1
        delay = os.environ.get(TEST_DELAY_ENV)
        if not delay or self.attempt > 1:
            return
        at = os.environ.get(TEST_DELAY_AT_ENV) or "1"
        if "=" in at:
            at = dict(pair.split("=", 1) for pair in at.split(",")).get(self.kind, "0")
        if self._calls == int(at):
            _append_log(self.job_id, f"test delay: {delay} s at call {self._calls}")
            time.sleep(float(delay))


def _append_log(job_id: int, message: str, **conditions) -> int:
    line = f"{timezone.now().isoformat(timespec='seconds')} {message}\n"
    return Job.objects.filter(pk=job_id, **conditions).update(log=Concat(F("log"), Value(line)))


Handler = Callable[[JobContext], dict | None]


@cache
def _handlers() -> dict[str, Handler]:
    """Every job kind and its function, from the project-level registry."""
    return {kind: import_string(path) for kind, path in registry.JOB_HANDLERS.items()}


def job_kinds() -> list[str]:
    return sorted(_handlers())


def queue_for(kind: str) -> str | None:
    """The Celery queue a job of `kind` goes to (registry.JOB_QUEUES); None: the
    default queue (CELERY_TASK_DEFAULT_QUEUE)."""
    setting = registry.JOB_QUEUES.get(kind)
    return (getattr(settings, setting, "") or None) if setting else None


def dispatch(job_id: int, kind: str) -> None:
    """Send the job's id to its queue."""
    from annotation_server.jobs.tasks import run_job

    queue = queue_for(kind)
    if queue:
        run_job.apply_async((job_id,), queue=queue)
    else:
        run_job.delay(job_id)


def enqueue(kind: str, *, params: dict | None = None, project=None, user=None) -> Job:
    """Create a queued Job and dispatch it once the current transaction commits."""
    if kind not in _handlers():
        raise ValueError(f"Unknown job kind {kind!r}; known: {', '.join(job_kinds())}")
    job = Job.objects.create(
        kind=kind,
        params=params or {},
        language=translation.get_language() or "",
        project=project,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    transaction.on_commit(lambda: dispatch(job.pk, kind))
    return job


def _owner_token() -> str:
    return f"{socket.gethostname()[:96]}:{os.getpid()}:{secrets.token_hex(4)}"


def _stale(now) -> Q:
    """A running row whose worker stopped renewing its lease."""
    cutoff = now - timedelta(seconds=lease_seconds())
    return Q(state=Job.State.RUNNING) & (
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def _give_up(job_id: int, now) -> bool:
    """Fail a stale running job that has had all its attempts. True if it did."""
    row = Job.objects.filter(_stale(now), pk=job_id, attempts__gte=max_attempts())
    previous = row.values_list("worker", "attempts").first()
    if previous is None:
        return False
    worker, attempts = previous
    error = (
        f"WorkerLost: the worker running this job ({worker}) stopped before it finished, "
        f"on attempt {attempts} of {max_attempts()}; not started again. "
        "Look for what kills the worker (memory, a time limit) before running it anew."
    )
    changed = row.filter(worker=worker, attempts=attempts).update(
        state=Job.State.FAILED, error=error, finished_at=now
    )
    if changed:
        _append_log(job_id, error)
        logger.error("job %s: %s", job_id, error)
    return bool(changed)


def claim(job_id: int) -> str | None:
    """queued -> running, exactly once; or take over a running job whose worker
    died (its lease ran out) while it has attempts left. Returns the claim's
    owner token, or None if the job is someone else's or finished."""
    now = timezone.now()
    owner = _owner_token()
    takeover = Job.objects.filter(_stale(now), pk=job_id, attempts__lt=max_attempts())
    previous = takeover.values_list("worker", "attempts").first()
    changed = Job.objects.filter(
        Q(state=Job.State.QUEUED) | Q(_stale(now), attempts__lt=max_attempts()), pk=job_id
    ).update(
        state=Job.State.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=owner,
        attempts=F("attempts") + 1,
    )
    if not changed:
        _give_up(job_id, now)
        return None
    if previous is not None:
        worker, attempts = previous
        _append_log(
            job_id,
            f"worker {worker} stopped during attempt {attempts} (no heartbeat for "
            f"{lease_seconds():g} s); attempt {attempts + 1} on {owner}",
        )
    return owner


class _Heartbeat(threading.Thread):
    """Renews the lease of the job this worker runs until stopped.

    `fork_tolerant`: a process that forks while this thread lives (the ingest
    pool) is safe: the thread only sleeps and updates one row on its own database
    connection, which a forked child never touches."""

    fork_tolerant = True

    def __init__(self, job_id: int, owner: str):
        super().__init__(name=f"refset-job-{job_id}-heartbeat", daemon=True)
        self.job_id, self.owner = job_id, owner
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            while not self.halt.wait(lease_seconds() / 3):
                try:
                    Job.objects.filter(
                        pk=self.job_id, state=Job.State.RUNNING, worker=self.owner
                    ).update(heartbeat_at=timezone.now())
                except DatabaseError:
                    logger.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
        finally:
            connection.close()

    def stop(self) -> None:
        self.halt.set()
        self.join()


def execute(job_id: int) -> str:
    """Run a queued job (or one whose worker died) to completion; returns its state."""
    owner = claim(job_id)
    if owner is None:
        state = Job.objects.filter(pk=job_id).values_list("state", flat=True).first()
        logger.info("job %s not claimed (state %s)", job_id, state)
        return state or "missing"
    job = Job.objects.get(pk=job_id)
    ctx = JobContext(job)
    # In-process jobs (the embedded demo) have no other worker to take over.
    heartbeat = None if settings.IN_PROCESS_JOBS else _Heartbeat(job_id, owner)
    if heartbeat:
        heartbeat.start()
    try:
        # In the language of whoever queued it (a worker has no request to ask).
        with translation.override(job.language or settings.LANGUAGE_CODE):
            result = _handlers()[job.kind](ctx) or {}
    except Exception as exc:  # the job fails; the worker goes on
        logger.exception("job %s (%s) failed", job_id, job.kind)
        return _finish(
            job_id,
            owner,
            state=Job.State.FAILED,
            error=f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}",
        )
    finally:
        if heartbeat:
            heartbeat.stop()
    return _finish(job_id, owner, state=Job.State.SUCCEEDED, progress=100, result=result)


def _finish(job_id: int, owner: str, **fields) -> str:
    changed = Job.objects.filter(pk=job_id, state=Job.State.RUNNING, worker=owner).update(
        finished_at=timezone.now(), **fields
    )
    if not changed:  # presumed dead, taken over: the successor's outcome stands
        logger.warning("job %s: lost its claim (%s) before finishing", job_id, owner)
        return Job.objects.filter(pk=job_id).values_list("state", flat=True).first() or "missing"
    return fields["state"]


class OwnedJob:
    """A job that the process creating it runs itself, outside any worker (the
    DICOM listener's import of an association: its files are on this process's
    disk). The row is created running, with all its attempts used, so no worker
    takes it over; its lease is renewed until `succeed` or `fail`. If this process
    dies, the lease runs out and the job is failed as "WorkerLost"."""

    def __init__(self, job_id: int, owner: str):
        self.job_id, self.owner = job_id, owner
        self._heartbeat = _Heartbeat(job_id, owner)
        self._heartbeat.start()

    @classmethod
    def start(cls, kind: str, *, project_id=None, params: dict | None = None) -> OwnedJob:
        now = timezone.now()
        owner = _owner_token()
        job = Job.objects.create(
            kind=kind,
            state=Job.State.RUNNING,
            params=params or {},
            language=translation.get_language() or settings.LANGUAGE_CODE,
            project_id=project_id,
            started_at=now,
            heartbeat_at=now,
            worker=owner,
            attempts=max_attempts(),
        )
        return cls(job.pk, owner)

    def log(self, message: str) -> None:
        _append_log(self.job_id, message)

    def progress(self, percent: float) -> None:
        Job.objects.filter(pk=self.job_id, worker=self.owner).update(
            progress=max(0, min(100, int(percent)))
        )

    def succeed(self, result: dict) -> str:
        return self._end(state=Job.State.SUCCEEDED, progress=100, result=result)

    def fail(self, error: str) -> str:
        return self._end(state=Job.State.FAILED, error=error)

    def _end(self, **fields) -> str:
        self._heartbeat.stop()
        return _finish(self.job_id, self.owner, **fields)


def recover_stale() -> list[int]:
    """Dispatch again every running job whose worker died (fail those out of
    attempts). Returns the ids dispatched."""
    now = timezone.now()
    dispatched = []
    rows = Job.objects.filter(_stale(now)).values_list("pk", "attempts", "kind")
    for job_id, attempts, kind in rows:
        if attempts >= max_attempts():
            _give_up(job_id, now)
            continue
        logger.warning("job %s: its worker stopped; dispatching it again", job_id)
        dispatch(job_id, kind)
        dispatched.append(job_id)
    return dispatched


def start_recovery() -> threading.Thread:
    """In a worker: `recover_stale` now and every half lease, on a daemon thread."""

    def loop() -> None:
        while True:
            try:
                recover_stale()
            except Exception:
                logger.exception("recovering stale jobs failed")
            finally:
                connection.close()
            time.sleep(lease_seconds() / 2)

    thread = threading.Thread(target=loop, name="refset-job-recovery", daemon=True)
    thread.fork_tolerant = True  # sleeps, and queries on its own connection (see _Heartbeat)
    thread.start()
    return thread


def mode_description() -> str:
    if settings.IN_PROCESS_JOBS:
        return "in-process (CELERY_BROKER_URL unset: jobs run inside the web process)"
    return "celery workers via " + settings.CELERY_BROKER_URL.split("@")[-1]
