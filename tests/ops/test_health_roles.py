"""/healthz says what the process is (REFSET_ROLE, a worker's queues, beat's
periodic runs) besides its database, broker and storage; `manage.py
healthcheck` gives workers and beat the same report. Settings: a wrong role
stops start-up; PostgreSQL pooling options come from the environment."""

from __future__ import annotations

import io
import json
import runpy
import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.test import Client

from annotation_server import settings as settings_module
from annotation_server.web import periodic

pytestmark = pytest.mark.django_db


def _healthz() -> dict:
    response = Client().get("/healthz")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_web_node_reports_its_role_and_host():
    body = _healthz()
    assert body["ok"] is True
    assert body["role"]["name"] == "web" and body["role"]["roles"] == ["web"]
    assert body["role"]["host"] == socket.gethostname()
    assert "queues" not in body["role"] and "periodic" not in body["checks"]
    assert set(body["checks"]) == {"database", "broker", "storage"}


def test_a_worker_reports_the_queues_it_consumes(settings):
    settings.REFSET_ROLES = ["worker"]
    settings.REFSET_WORKER_QUEUES = ["ingest", "qc"]
    assert _healthz()["role"] | {"pid": 0} == {
        "name": "worker",
        "roles": ["worker"],
        "host": socket.gethostname(),
        "pid": 0,
        "queues": ["ingest", "qc"],
    }
    settings.REFSET_WORKER_QUEUES = []
    assert _healthz()["role"]["queues"] == [settings.CELERY_TASK_DEFAULT_QUEUE]


def test_beat_reports_its_schedule_and_when_each_periodic_job_last_ran(settings, project):
    settings.REFSET_ROLES = ["web", "beat"]
    body = _healthz()
    assert body["role"]["name"] == "web+beat"
    assert body["role"]["schedule"] == sorted(settings.CELERY_BEAT_SCHEDULE)
    assert body["checks"]["periodic"]["detail"] == dict.fromkeys(periodic.PERIODIC)
    job = periodic.run_now("cleanup")
    runs = _healthz()["checks"]["periodic"]["detail"]
    assert runs["cleanup"] == {"state": "succeeded", "finished_at": job.finished_at.isoformat()}
    assert runs["verify_audit"] is None


def test_the_healthcheck_command_prints_the_report_and_fails_with_a_check(settings):
    settings.REFSET_ROLES = ["listener"]
    out = io.StringIO()
    call_command("healthcheck", stdout=out)
    report = json.loads(out.getvalue())
    assert report["ok"] is True and report["role"]["name"] == "listener"
    settings.IN_PROCESS_JOBS = False
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    out = io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("healthcheck", stdout=out)
    assert exit_.value.code == 1
    assert json.loads(out.getvalue())["checks"]["broker"]["ok"] is False


# -- settings from the environment ---------------------------------------------------


def _settings_with(monkeypatch, **env) -> dict:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(settings_module.__file__)


def test_an_unknown_role_stops_start_up_naming_the_variable(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="REFSET_ROLE='wrker'.*web, worker, beat"):
        _settings_with(monkeypatch, REFSET_ROLE="wrker")
    assert _settings_with(monkeypatch, REFSET_ROLE="Worker+beat")["REFSET_ROLES"] == [
        "worker",
        "beat",
    ]


def test_postgres_pooling_options_come_from_the_environment(monkeypatch):
    url = "postgresql://refset@127.0.0.1:6432/refset"
    db = _settings_with(monkeypatch, DATABASE_URL=url)["DATABASES"]["default"]
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is False
    db = _settings_with(
        monkeypatch,
        DATABASE_URL=url,
        REFSET_DB_CONN_MAX_AGE="0",
        REFSET_DB_CONN_HEALTH_CHECKS="0",
        REFSET_DB_DISABLE_SERVER_SIDE_CURSORS="1",  # behind pgbouncer, pool_mode=transaction
    )["DATABASES"]["default"]
    assert db["CONN_MAX_AGE"] == 0 and db["CONN_HEALTH_CHECKS"] is False
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True
