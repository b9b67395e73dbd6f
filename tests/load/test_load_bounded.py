"""The load bench's bounded run in `make test`: 8 simulated readers for 10 s
against gunicorn (production settings, several workers) and a Celery worker on the
harness's PostgreSQL and Redis, then the bench's checks: no acknowledged save
lost, no version conflict resolved silently, no 5xx, every settle job succeeded.
The same code as `bench/load.py` (bench/loadsim.py, loadseed.py, loadstack.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

import pytest
from django.db import connection

from bench import loadseed
from bench.loadsim import Options, report, run_readers
from bench.loadstack import Stack, production_env

READERS, SECONDS, SLICES = 8, 10, 16


def _in_own_loop(coroutine):
    """Run the readers in a thread with its own event loop: a browser test earlier
    on this xdist worker leaves Playwright's loop running in the test thread, where
    asyncio.run() refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@pytest.mark.services
@pytest.mark.celery
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_bounded_load_loses_no_save_and_resolves_no_conflict_silently(settings, tmp_path):
    assert connection.vendor == "postgresql", "make test provides PostgreSQL"
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test provides Redis"
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    url = f"postgresql://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    seeded = loadseed.seed(readers=READERS, cases=READERS, slices=SLICES, matrix=32)
    env = production_env(
        database_url=url,
        broker_url=settings.CELERY_BROKER_URL,
        queue=f"refset-load-{uuid.uuid4().hex[:8]}",
        media_root=str(settings.MEDIA_ROOT),
        var_dir=str(settings.VAR_DIR),
    )
    servers = Stack(env, tmp_path / "logs", workers=2, threads=4)
    try:
        servers.start()
        servers.warm_up(rounds=1)
        recorder = _in_own_loop(
            run_readers(
                servers.base_url,
                seeded.accounts,
                SECONDS,
                Options(slices=SLICES, request_timeout=30),
            )
        )
        print(report(recorder))
        verdict = loadseed.verify(recorder, job_timeout=30)
        print("\n".join(verdict.lines))
        logged = servers.errors_logged()
    finally:
        servers.stop()
    assert verdict.ok, "\n".join(verdict.failures + logged[:2])
    # The run did what it is for (kept low: the machine may be busy): reads
    # submitted, and conflicts provoked.
    assert recorder.logins == READERS
    assert recorder.cases_submitted >= 1
    assert any(w.code == "version_conflict" for w in recorder.writes)
