"""On the embedded SQLite database the audit table is append-only too, and
concurrent writers queue for the lock instead of losing their events.

The suite runs on PostgreSQL, so these tests migrate a SQLite file once and run
tests/audit/sqlite_probe.py against a copy of it in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env(db: Path, var: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL",)}
    env.update(
        DATABASE_URL=f"sqlite:///{db}",
        REFSET_VAR_DIR=str(var),
        DJANGO_SETTINGS_MODULE="annotation_server.settings",
        PYTHONPATH=str(ROOT),
    )
    return env


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("sqlite")
    db = base / "migrated.sqlite3"
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=_env(db, base / "var"),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    return db


def _probe(migrated: Path, tmp_path: Path, *args: str) -> dict:
    db = tmp_path / "audit.sqlite3"
    shutil.copyfile(migrated, db)
    result = subprocess.run(
        [sys.executable, "-m", "tests.audit.sqlite_probe", *args],
        cwd=ROOT,
        env=_env(db, tmp_path / "var"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sqlite_refuses_queryset_and_sql_update_and_delete_of_audit_events(
    migrated_sqlite, tmp_path
):
    result = _probe(migrated_sqlite, tmp_path, "guard")
    for attempt, outcome in result["outcome"].items():
        assert "append-only" in outcome, (attempt, outcome)
    assert result["rows"] == ["test.guard"] * 3
    assert result["chain_ok"] is True


def test_concurrent_audit_writes_on_sqlite_all_land_in_one_chain(migrated_sqlite, tmp_path):
    threads, each = 24, 3
    result = _probe(migrated_sqlite, tmp_path, "concurrent", str(threads), str(each))
    assert result["errors"] == []
    assert result["events"] == threads * each
    assert result["chain_ok"] is True and result["checked"] == threads * each
