"""Jobs: state in the database, claimed once, run by a real Celery worker."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

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


def _running(kind="audit.verify_chain", *, beat_ago: float, attempts: int = 1) -> Job:
    beat = timezone.now() - timedelta(seconds=beat_ago)
    return Job.objects.create(
        kind=kind,
        state=Job.State.RUNNING,
        started_at=beat,
        heartbeat_at=beat,
        worker="dead-host:4242:0000",
        attempts=attempts,
    )


@pytest.mark.django_db
def test_a_running_job_whose_worker_stopped_beating_is_taken_over(settings):
    settings.REFSET_JOB_LEASE_S = 30
    audit.record("test.event")
    job = _running(beat_ago=31)
    assert services.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.attempts == 2 and job.result["ok"] is True
    assert "worker dead-host:4242:0000 stopped during attempt 1" in job.log
    assert job.worker != "dead-host:4242:0000"


@pytest.mark.django_db
def test_a_running_job_with_a_live_lease_is_not_run_twice(settings):
    settings.REFSET_JOB_LEASE_S = 30
    job = _running(beat_ago=5)
    assert services.execute(job.pk) == Job.State.RUNNING
    job.refresh_from_db()
    assert job.attempts == 1 and job.worker == "dead-host:4242:0000"
    assert services.recover_stale() == []


@pytest.mark.django_db
def test_a_job_whose_worker_died_on_every_attempt_is_failed_clearly(settings):
    settings.REFSET_JOB_LEASE_S = 30
    settings.REFSET_JOB_MAX_ATTEMPTS = 3
    job = _running(beat_ago=60, attempts=3)
    assert services.execute(job.pk) == Job.State.FAILED
    job.refresh_from_db()
    assert job.finished_at and job.attempts == 3
    assert job.error.startswith("WorkerLost: the worker running this job (dead-host:4242:0000)")
    assert "attempt 3 of 3" in job.error and "WorkerLost" in job.log
    # The sweep that workers run finds nothing left to do.
    assert services.recover_stale() == []


@pytest.mark.django_db
def test_recovery_dispatches_stale_jobs_again(settings, monkeypatch):
    from annotation_server.jobs import tasks

    settings.REFSET_JOB_LEASE_S = 30
    stale, live = _running(beat_ago=31), _running(beat_ago=1)
    sent = []
    monkeypatch.setattr(tasks.run_job, "delay", sent.append)
    assert services.recover_stale() == [stale.pk] and sent == [stale.pk]
    assert live.pk not in sent


@pytest.mark.django_db
def test_a_worker_presumed_dead_cannot_overwrite_its_successor(settings, monkeypatch):
    """Attempt 1 stalls past its lease, attempt 2 takes over and finishes; when
    attempt 1 comes back its outcome is dropped."""
    settings.REFSET_JOB_LEASE_S = 30
    outcomes = []

    def slow_then_fast(ctx):
        if not outcomes:
            outcomes.append("first")
            Job.objects.filter(pk=ctx.job_id).update(
                heartbeat_at=timezone.now() - timedelta(seconds=60)
            )
            assert services.execute(ctx.job_id) == Job.State.SUCCEEDED  # the successor
            raise RuntimeError("the stalled first attempt fails late")
        outcomes.append("second")
        return {"by": "second"}

    monkeypatch.setattr(services, "_handlers", lambda: {"x.slow": slow_then_fast})
    job = Job.objects.create(kind="x.slow")
    assert services.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert outcomes == ["first", "second"]
    assert job.state == Job.State.SUCCEEDED and job.result == {"by": "second"}
    assert job.attempts == 2 and not job.error


@pytest.mark.django_db
def test_a_job_speaks_the_language_of_whoever_queued_it(monkeypatch):
    """A worker has no request to take a language from: the job runs in the
    language active when it was queued (the queuing request's), so an English
    user's import report is in English on a server whose default is zh-Hans."""
    from django.utils import translation
    from django.utils.translation import gettext

    spoken = []

    def speak(ctx):
        spoken.append((translation.get_language(), gettext("no such file or folder")))
        return {}

    monkeypatch.setattr(services, "_handlers", lambda: {"x.speak": speak})
    with translation.override("zh-hans"):
        chinese = services.enqueue("x.speak")
    english = services.enqueue("x.speak")  # the test thread speaks English
    unknown = Job.objects.create(kind="x.speak")  # queued before jobs kept a language
    for job in (chinese, english, unknown):
        assert services.execute(job.pk) == Job.State.SUCCEEDED
    assert [job.language for job in (chinese, english)] == ["zh-hans", "en"]
    assert spoken == [
        ("zh-hans", "文件或文件夹不存在"),
        ("en", "no such file or folder"),
        ("zh-hans", "文件或文件夹不存在"),  # the server's default
    ]


@pytest.mark.django_db(transaction=True)
def test_an_owned_job_runs_in_its_process_and_no_worker_takes_it_over(settings):
    """The listener's kind of job: created running by the process that runs it;
    no claim succeeds on it, and if that process dies it is failed, not rerun."""
    settings.REFSET_JOB_LEASE_S = 30
    owned = services.OwnedJob.start("imaging.import", params={"source": "dimse"})
    try:
        owned.log("receiving")
        owned.progress(140)
        row = Job.objects.get(pk=owned.job_id)
        assert (row.state, row.progress, row.attempts) == (
            Job.State.RUNNING,
            100,
            services.max_attempts(),
        )
        assert "receiving" in row.log
        assert services.claim(owned.job_id) is None  # live lease: nobody else runs it
    finally:
        assert owned.succeed({"imported": 3}) == Job.State.SUCCEEDED
    row = Job.objects.get(pk=owned.job_id)
    assert (row.state, row.result, row.progress) == (Job.State.SUCCEEDED, {"imported": 3}, 100)

    dead = services.OwnedJob.start("imaging.import")
    dead._heartbeat.stop()  # the process died: its lease is no longer renewed
    Job.objects.filter(pk=dead.job_id).update(heartbeat_at=timezone.now() - timedelta(seconds=31))
    assert services.recover_stale() == []  # all attempts used: not dispatched again
    row = Job.objects.get(pk=dead.job_id)
    assert row.state == Job.State.FAILED and "WorkerLost" in row.error
