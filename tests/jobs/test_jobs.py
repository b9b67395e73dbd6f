"""Jobs: state in the database, claimed once, run by a real Celery worker."""

from __future__ import annotations

import pytest

from annotation_server.audit import services as audit
from annotation_server.jobs import services
from annotation_server.jobs.models import Job
from tests.worker import wait_for_job


@pytest.mark.django_db
def test_unknown_job_kind_is_refused():
    with pytest.raises(ValueError, match="Unknown job kind 'nope'"):
        services.enqueue("nope")


@pytest.mark.django_db
def test_a_job_is_claimed_once_and_records_its_result():
    audit.record("test.event")
    job = Job.objects.create(kind="audit.verify_chain")
    assert services.execute(job.pk) == Job.State.SUCCEEDED
    assert services.execute(job.pk) == Job.State.SUCCEEDED  # second delivery: not run again
    job.refresh_from_db()
    assert job.attempts == 1 and job.progress == 100
    assert job.result["ok"] is True and job.result["checked"] >= 1
    assert "intact" in job.log


@pytest.mark.django_db
def test_a_failing_job_keeps_its_error(monkeypatch):
    def boom(ctx):
        ctx.progress(40, "halfway")
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(services, "_handlers", lambda: {"x.boom": boom})
    job = Job.objects.create(kind="x.boom")
    assert services.execute(job.pk) == Job.State.FAILED
    job.refresh_from_db()
    assert job.progress == 40 and "halfway" in job.log
    assert job.error.startswith("RuntimeError: disk on fire")


@pytest.mark.celery
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_real_worker_runs_a_job_dispatched_after_commit(celery_worker, reader_a):
    for i in range(3):
        audit.record("test.event", actor=reader_a, data={"i": i})
    job = services.enqueue("audit.verify_chain", user=reader_a)  # autocommit: dispatched now
    wait_for_job(job, celery_worker)
    assert job.result == {"checked": 3, "ok": True, "first_bad_id": None, "problem": ""}
    assert job.worker and job.started_at and job.finished_at
