"""Celery worker processes that a fault test starts, kills and replaces.

Like the `celery_worker` fixture (tests/conftest.py), but any number of them,
with extra environment (the test-only job delay, a short job lease), killed with
SIGKILL on purpose."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

from annotation_server.jobs.models import Job

ROOT = Path(__file__).resolve().parent.parent.parent

# A short lease, so a replacement worker takes a dead worker's job over in seconds.
LEASE_S = 2


def database_url() -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_worker(queue: str, media_root: str, **extra_env: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        REFSET_CELERY_QUEUE=queue,
        REFSET_MEDIA_ROOT=str(media_root),
        REFSET_JOB_LEASE_S=str(LEASE_S),
        **extra_env,
    )
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "annotation_server",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        # A process group of its own: what the worker forked (the ingest pool) can
        # be found, and nothing outlives the test.
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    with contextlib.suppress(ProcessLookupError):  # anything it left behind
        os.killpg(proc.pid, signal.SIGKILL)


def kill_worker(proc: subprocess.Popen) -> None:
    """SIGKILL to the worker process alone, as the kernel's OOM killer does: no warm
    shutdown, no acknowledgement, no `finally`; the processes it forked are not
    signalled."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def survivors(proc: subprocess.Popen) -> list[str]:
    """The processes left in a worker's process group (after it died: what it
    forked and did not take with it), as "pid command" lines."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ")".
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == proc.pid and fields[0] != "Z":
            found.append(f"{stat.parent.name} {text[text.index('(') + 1 : text.rindex(')')]}")
    return found


def wait_for(check, what: str, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited (rc {proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def job_row(job: Job) -> Job:
    job.refresh_from_db()
    return job
