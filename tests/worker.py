"""Waiting for a job that a real Celery worker (the `celery_worker` fixture) runs."""

from __future__ import annotations

import time

from annotation_server.jobs.models import Job


def wait_for_job(job: Job, worker, timeout: float = 90) -> Job:
    """Poll the Job row until it finishes; fail if the worker process dies, the
    job does not succeed, or it ran anywhere but a worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished_at:
            break
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)
    assert job.state == Job.State.SUCCEEDED, (job.kind, job.state, job.error, job.log)
    assert job.worker, "ran in the worker, not in-process"
    return job
