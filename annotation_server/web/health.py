"""Health checks for /healthz (and `manage.py healthcheck` on hosts that serve no
HTTP: workers, beat, the DICOM listener): what this process is (REFSET_ROLE, a
worker's queues, the host), then database, broker (or in-process jobs) and
storage; for beat also when each periodic job last ran."""

from __future__ import annotations

import os
import socket
import time
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

from annotation_server.imaging import storage


def _timed(fn) -> dict:
    start = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except Exception as exc:  # a health check reports, never raises
        detail, ok = f"{type(exc).__name__}: {exc}", False
    return {"ok": ok, "detail": detail, "ms": round(1000 * (time.perf_counter() - start), 1)}


def check_database() -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return f"{connection.vendor}" + (" (embedded)" if settings.EMBEDDED_DATABASE else "")


def check_broker() -> str:
    if settings.IN_PROCESS_JOBS:
        return "in-process jobs (CELERY_BROKER_URL unset)"
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "reachable"


def check_storage() -> str:
    """Write, read back and delete a small file in the default storage (on S3: a
    PutObject, GetObject and DeleteObject in the bucket); says which storage it
    is (class, and bucket and endpoint for S3, never the credentials)."""
    name = default_storage.save(f"healthz/{uuid.uuid4().hex}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name) as fh:
            if fh.read() != b"ok":
                raise OSError("storage returned different bytes")
    finally:
        default_storage.delete(name)
    return storage.describe()


def roles() -> list[str]:
    """This process's roles from REFSET_ROLE ("web", "worker+beat", ...; settings
    refuses unknown ones at start-up)."""
    return list(settings.REFSET_ROLES)


def role() -> dict:
    """What this process is: its roles, the queues a worker consumes, the periodic
    jobs beat sends, and the host (so a proxy's or an operator's check tells the
    nodes apart)."""
    mine = roles()
    info: dict = {"name": "+".join(mine), "roles": mine, "host": socket.gethostname()}
    info["pid"] = os.getpid()
    if "worker" in mine:
        info["queues"] = list(settings.REFSET_WORKER_QUEUES) or [settings.CELERY_TASK_DEFAULT_QUEUE]
    if "beat" in mine:
        info["schedule"] = sorted(settings.CELERY_BEAT_SCHEDULE)
    return info


def check_periodic() -> dict:
    """When each periodic job last finished, and how (beat's health)."""
    from annotation_server.web import periodic

    out = {}
    for name in periodic.PERIODIC:
        job = periodic.latest(name)
        out[name] = (
            {"state": job.state, "finished_at": job.finished_at.isoformat()}
            if job is not None and job.finished_at
            else None
        )
    return out


def report() -> dict:
    checks = {
        "database": _timed(check_database),
        "broker": _timed(check_broker),
        "storage": _timed(check_storage),
    }
    if "beat" in roles():
        checks["periodic"] = _timed(check_periodic)
    return {"ok": all(c["ok"] for c in checks.values()), "role": role(), "checks": checks}
