"""Health checks for /healthz: database, broker (or in-process jobs), storage."""

from __future__ import annotations

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


def report() -> dict:
    checks = {
        "database": _timed(check_database),
        "broker": _timed(check_broker),
        "storage": _timed(check_storage),
    }
    return {"ok": all(c["ok"] for c in checks.values()), "checks": checks}
