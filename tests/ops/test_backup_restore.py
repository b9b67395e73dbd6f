"""Backup and restore, as README.md ("Backup and restore") says to do it: a demo
state (ingested CT, reads with findings, a case settled into reference findings,
an anchored audit chain) is dumped with `pg_dump -Fc`, its storage copied with
`cp -a`, both restored into a fresh database and a fresh folder; the copy holds
every case, read, finding, reference finding and audit row, every stored file
still hashes to its content key, and `manage.py verify_audit` run against the
copy exits 0."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.models import Instance
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.reading.models import Finding, ReadingTask
from tests import factories
from tests.harness import pg_bin

ROOT = Path(__file__).resolve().parent.parent.parent
ANCHOR_KEY = "test-anchor-key"
COUNTED = {
    "cases": Case,
    "reading tasks": ReadingTask,
    "findings": Finding,
    "reference findings": ReferenceFinding,
    "audit events": AuditEvent,
    "instances": Instance,
}


def _url(name: str) -> str:
    db = connection.settings_dict
    return f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, (cmd, done.stdout, done.stderr)
    return done


def _wait_for_jobs(worker, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while Job.objects.exclude(state__in=Job.FINISHED).exists():
        assert time.monotonic() < deadline, "jobs still queued"
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)
    failed = list(Job.objects.filter(state=Job.State.FAILED).values_list("kind", "error"))
    assert not failed, failed


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            what: conn.execute(f'SELECT count(*) FROM "{model._meta.db_table}"').fetchone()[0]
            for what, model in COUNTED.items()
        }


@pytest.fixture
def media(settings, tmp_path):
    """Set before the worker starts, so the worker stores and reads the same files."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REFSET_AUDIT_ANCHOR_KEY = ANCHOR_KEY
    os.environ["REFSET_AUDIT_ANCHOR_KEY"] = ANCHOR_KEY  # for the worker
    yield Path(settings.MEDIA_ROOT)
    os.environ.pop("REFSET_AUDIT_ANCHOR_KEY", None)


@pytest.mark.celery
@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_restored_backup_has_everything_and_its_audit_chain_verifies(
    media, tmp_path, celery_worker
):
    for key in ("lung-nodule-ct", "chest-radiograph"):
        factories.schema(key)  # shipped by migrations; an earlier flush may have emptied them
    call_command(
        "demo",
        *("--ct-cases", "5", "--ct-slices", "8", "--xr-cases", "1", "--xr-size", "256"),
        *("--password", "demo-pass-123"),
    )
    _wait_for_jobs(celery_worker)
    call_command("anchor_audit")
    assert ReferenceFinding.objects.exists() and Finding.objects.exists()
    assert Case.objects.filter(state=Case.State.FROZEN).exists()  # the demo froze v1.0.0

    # Back up: the dump, then the storage.
    source = _url(connection.settings_dict["NAME"])
    dump = tmp_path / "refset.dump"
    _run([pg_bin("pg_dump"), "-Fc", "-d", source, "-f", str(dump)])
    backup = tmp_path / "backup-media"
    backup.mkdir()
    _run(["cp", "-a", f"{media}/.", f"{backup}/"])

    # Restore into a fresh database and a fresh storage folder.
    name = f"refset_restored_{uuid.uuid4().hex[:8]}"
    db = connection.settings_dict
    host = ["-h", db["HOST"], "-p", str(db["PORT"]), "-U", db["USER"]]
    _run([pg_bin("createdb"), *host, name])
    try:
        restored = _url(name)
        _run([pg_bin("pg_restore"), "--no-owner", "-d", restored, str(dump)])
        restored_media = tmp_path / "restored-media"
        restored_media.mkdir()
        _run(["cp", "-a", f"{backup}/.", f"{restored_media}/"])

        expected = {what: model.objects.count() for what, model in COUNTED.items()}
        assert all(expected.values()), expected
        assert _counts(restored) == expected

        # Every stored instance is there, whole: its bytes hash to its content key.
        with psycopg.connect(restored) as conn:
            rows = conn.execute(f'SELECT sha256, file FROM "{Instance._meta.db_table}"').fetchall()
        assert len(rows) == expected["instances"]
        for sha256, key in rows:
            data = (restored_media / key).read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha256 == Path(key).stem, key

        env = dict(
            os.environ,
            DATABASE_URL=restored,
            REFSET_MEDIA_ROOT=str(restored_media),
            REFSET_AUDIT_ANCHOR_KEY=ANCHOR_KEY,
        )
        env.pop("CELERY_BROKER_URL", None)
        check = subprocess.run(
            [sys.executable, "manage.py", "verify_audit"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, (check.stdout, check.stderr)
        assert f"Audit chain intact: {expected['audit events']} events, 1 anchor" in check.stdout

        # The check has teeth: with the newest audit rows missing from the copy
        # (an older dump beside the newer anchor), verify_audit exits 1.
        table = AuditEvent._meta.db_table
        with psycopg.connect(restored, autocommit=True) as conn:
            conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER USER')
            conn.execute(f'DELETE FROM "{table}" WHERE id > (SELECT max(id) - 3 FROM "{table}")')
        cut = subprocess.run(
            [sys.executable, "manage.py", "verify_audit"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        assert cut.returncode == 1, (cut.stdout, cut.stderr)
        assert "Audit chain BROKEN" in cut.stderr
    finally:
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
