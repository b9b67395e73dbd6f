"""Periodic work (web/periodic.py): beat's schedule names every periodic job and
nothing else; overdue-read reminders reach the reader's home page; the nightly
audit verification alerts on a break and shows it to managers; the cleanup
removes orphaned uploads and `.part-*` leftovers older than the cutoff and keeps
everything younger or still needed; `manage.py run_periodic` runs the same jobs
without a broker."""

from __future__ import annotations

import io
import logging
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core import mail
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import TestCase
from django.utils import timezone

from annotation_server.audit import services as audit
from annotation_server.jobs.models import Job
from annotation_server.reading.models import ReadingTask
from annotation_server.web import periodic
from tests import factories

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


@pytest.fixture(autouse=True)
def own_media(settings, tmp_path):
    """A storage folder of this test's own (audit anchors and uploads of other
    tests must not count here)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REFSET_EXPORT_DIR = tmp_path / "exports"
    settings.REFSET_ALERT_EMAILS = ["ops@example.org"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    return Path(settings.MEDIA_ROOT)


def _home(session_client_for, user) -> str:
    return session_client_for(user).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()


def _age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


# -- the schedule ------------------------------------------------------------------


def test_beat_schedule_sends_every_periodic_job_and_only_those(settings):
    from annotation_server.celery import app

    app.loader.import_default_modules()
    assert "refset.periodic" in app.tasks
    assert periodic.schedule_names() == set(periodic.PERIODIC)
    assert app.conf.beat_schedule == settings.CELERY_BEAT_SCHEDULE
    nightly = settings.CELERY_BEAT_SCHEDULE["verify-audit-chain"]["schedule"]
    assert nightly.hour == {settings.REFSET_AUDIT_VERIFY_HOUR}
    assert settings.CELERY_BEAT_SCHEDULE["cleanup"]["schedule"] == timedelta(
        minutes=settings.REFSET_CLEANUP_MIN
    )


def test_beats_task_queues_a_job_and_does_not_stack_a_second_while_one_waits():
    from annotation_server.web.tasks import run_periodic

    with TestCase.captureOnCommitCallbacks(execute=False):
        first = run_periodic("cleanup")
        second = run_periodic("cleanup")
        other = run_periodic("overdue_reminders")
    assert first.startswith("job ") and second.startswith("skipped")
    assert other.startswith("job ")
    rows = Job.objects.filter(kind=periodic.JOB_KIND)
    assert sorted(j.params["name"] for j in rows) == ["cleanup", "overdue_reminders"]
    assert all(j.state == Job.State.QUEUED for j in rows)
    with pytest.raises(ValueError, match="unknown periodic job 'nope'"):
        periodic.enqueue("nope")


# -- overdue reminders ---------------------------------------------------------------


def test_overdue_reads_are_reminded_on_the_readers_home_page_while_still_open(
    project, reader_a, reader_b, session_client_for
):
    past, future = timezone.now() - timedelta(days=2), timezone.now() + timedelta(days=2)
    late = [
        factories.TaskFactory(case=factories.CaseFactory(project=project), reader=reader_a)
        for _ in range(2)
    ]
    ReadingTask.objects.filter(pk__in=[t.pk for t in late]).update(due_at=past)
    on_time = factories.TaskFactory(case=factories.CaseFactory(project=project), reader=reader_b)
    ReadingTask.objects.filter(pk=on_time.pk).update(due_at=future)
    done = factories.TaskFactory(case=factories.CaseFactory(project=project), reader=reader_b)
    ReadingTask.objects.filter(pk=done.pk).update(due_at=past, state=ReadingTask.State.SUBMITTED)

    job = periodic.run_now("overdue_reminders")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.result["reads"] == 2 and job.result["people"] == 1
    assert sorted(job.result["readers"][str(reader_a.pk)]["reads"]) == sorted(t.pk for t in late)

    page = _home(session_client_for, reader_a)
    assert 'data-testid="overdue-reminder"' in page and "2 overdue reads" in page
    assert 'data-testid="overdue-reminder"' not in _home(session_client_for, reader_b)

    # Submitted since the reminder: the page counts only what is still open.
    ReadingTask.objects.filter(pk=late[0].pk).update(state=ReadingTask.State.SUBMITTED)
    page = _home(session_client_for, reader_a)
    assert "1 overdue read." in page
    ReadingTask.objects.filter(pk=late[1].pk).update(state=ReadingTask.State.SUBMITTED)
    assert "overdue-reminder" not in _home(session_client_for, reader_a)


def test_overdue_arbitrations_are_reminded_too(project, arbitrator):
    from annotation_server.adjudication.models import ArbitrationTask

    case = factories.CaseFactory(project=project)
    task = ArbitrationTask.objects.create(case=case, arbitrator=arbitrator)
    ArbitrationTask.objects.filter(pk=task.pk).update(due_at=timezone.now() - timedelta(hours=1))
    result = periodic.remind_overdue()
    assert result["arbitrations"] == 1
    assert result["readers"][str(arbitrator.pk)]["arbitrations"] == [task.pk]
    notices = periodic.notices_for(arbitrator)
    assert notices == []  # no run recorded yet: the page shows runs, not guesses
    periodic.run_now("overdue_reminders")
    (notice,) = periodic.notices_for(arbitrator)
    assert notice["kind"] == "overdue" and notice["arbitrations"] == 1 and notice["reads"] == 0


def _overdue_marks(client, url: str) -> dict[str, bool]:
    """Per row (data-task) of a worklist page: whether it says it is overdue."""
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr ")[1:]
    return {r.split('data-task="')[1].split('"')[0]: 'data-testid="overdue"' in r for r in rows}


def test_the_worklist_the_reminder_links_to_marks_the_overdue_reads(
    project, reader_a, session_client_for
):
    now = timezone.now()
    late, on_time, undated = (
        factories.TaskFactory(case=factories.CaseFactory(project=project), reader=reader_a)
        for _ in range(3)
    )
    ReadingTask.objects.filter(pk=late.pk).update(due_at=now - timedelta(hours=1))
    ReadingTask.objects.filter(pk=on_time.pk).update(due_at=now + timedelta(days=3))
    client = session_client_for(reader_a)
    marks = _overdue_marks(client, "/worklist/")
    assert marks == {str(late.pk): True, str(on_time.pk): False, str(undated.pk): False}
    # a submitted read is no longer overdue, whatever its date
    ReadingTask.objects.filter(pk=late.pk).update(state=ReadingTask.State.SUBMITTED)
    assert _overdue_marks(client, "/worklist/?state=submitted") == {str(late.pk): False}


def test_the_arbitration_queue_marks_the_overdue_tasks(project, arbitrator, session_client_for):
    from annotation_server.adjudication.models import ArbitrationTask

    now = timezone.now()
    late, on_time = (
        ArbitrationTask.objects.create(
            case=factories.CaseFactory(project=project), arbitrator=arbitrator
        )
        for _ in range(2)
    )
    ArbitrationTask.objects.filter(pk=late.pk).update(due_at=now - timedelta(hours=1))
    ArbitrationTask.objects.filter(pk=on_time.pk).update(due_at=now + timedelta(days=3))
    client = session_client_for(arbitrator)
    assert _overdue_marks(client, "/arbitrate/") == {str(late.pk): True, str(on_time.pk): False}
    page = client.get("/arbitrate/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "已逾期" in page


# -- the nightly audit verification --------------------------------------------------


def _tamper(event_id: int) -> None:
    with connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"i": 99}', event_id])
        cur.execute("SET LOCAL session_replication_role = origin")


def test_an_intact_audit_chain_is_recorded_and_alerts_no_one(project, manager, session_client_for):
    for i in range(3):
        audit.record("test.event", data={"i": i})
    job = periodic.run_now("verify_audit")
    assert job.state == Job.State.SUCCEEDED and job.result["ok"] is True
    assert job.result["checked"] >= 3 and mail.outbox == []
    page = _home(session_client_for, manager)
    assert "audit-broken" not in page


def test_a_broken_audit_chain_is_mailed_logged_and_shown_to_managers_only(
    project, manager, reader_a, session_client_for, caplog
):
    events = [audit.record("test.event", data={"i": i}) for i in range(4)]
    _tamper(events[2].pk)
    with caplog.at_level(logging.ERROR, logger="annotation_server.web.periodic"):
        job = periodic.run_now("verify_audit")
    assert job.state == Job.State.SUCCEEDED
    assert job.result["ok"] is False and job.result["first_bad_id"] == events[2].pk
    assert any("audit chain broken" in r.getMessage() for r in caplog.records)
    (message,) = mail.outbox
    assert message.to == ["ops@example.org"] and "BROKEN" in message.body
    page = _home(session_client_for, manager)
    assert 'data-testid="audit-broken"' in page and f"#{events[2].pk}" in page
    assert "audit-broken" not in _home(session_client_for, reader_a)
    with pytest.raises(SystemExit) as exit_:
        call_command(
            "run_periodic",
            "verify_audit",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert exit_.value.code == 1


# -- cleanup ---------------------------------------------------------------------------


def _upload(batch: str, age_s: float, media: Path) -> list[str]:
    keys = [
        default_storage.save(f"uploads/{batch}/000000", ContentFile(b"DICM")),
        default_storage.save(f"uploads/{batch}/names.json", ContentFile(b"[]")),
    ]
    for key in keys:
        _age(media / key, age_s)
    return keys


def test_cleanup_removes_old_orphans_and_keeps_young_or_pending_files(
    own_media, settings, tmp_path, monkeypatch, project
):
    orphan = _upload("a" * 32, 2 * DAY, own_media)
    young = _upload("b" * 32, 60, own_media)
    pending = _upload("c" * 32, 2 * DAY, own_media)
    Job.objects.create(
        kind="imaging.import",
        params={"uploads": [{"name": "upload 1", "key": pending[0], "size": 4}]},
    )
    stale_part = own_media / "instances" / "ab" / "cd" / "x.dcm.part-1-abcd"
    stale_part.parent.mkdir(parents=True)
    stale_part.write_bytes(b"half")
    _age(stale_part, 2 * DAY)
    fresh_part = stale_part.with_name("y.dcm.part-2-beef")
    fresh_part.write_bytes(b"being written")
    kept_instance = stale_part.with_name("z.dcm")
    kept_instance.write_bytes(b"whole")
    _age(kept_instance, 30 * DAY)

    exports = Path(settings.REFSET_EXPORT_DIR) / "lung" / "shared"
    (exports / ".part-lung_v1-123").mkdir(parents=True)
    (exports / ".part-lung_v1-123" / "cases.csv").write_text("x")
    for p in (exports / ".part-lung_v1-123" / "cases.csv", exports / ".part-lung_v1-123"):
        _age(p, 2 * DAY)
    finished = exports / "lung_v1.zip"
    finished.write_bytes(b"PK")
    _age(finished, 30 * DAY)
    recent = exports / "lung_v2.zip"
    recent.write_bytes(b"PK")  # written just now: a resumable export's

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    dead = scratch_root / "refset-import-dead"
    dead.mkdir()
    (dead / "000000.zip").write_bytes(b"zip")
    for p in (dead / "000000.zip", dead):
        _age(p, 2 * DAY)
    alive = scratch_root / "refset-import-alive"
    alive.mkdir()
    (alive / "000000.zip").write_bytes(b"zip")  # written just now
    _age(alive, 2 * DAY)
    other = scratch_root / "someone-elses"
    other.mkdir()
    _age(other, 2 * DAY)

    job = periodic.run_now("cleanup")
    assert job.state == Job.State.SUCCEEDED, job.error
    result = job.result
    assert result["upload_batches"] == 1 and result["upload_files"] == 2
    assert not any(default_storage.exists(k) for k in orphan)
    assert all(default_storage.exists(k) for k in young + pending)
    assert not (own_media / "uploads" / ("a" * 32)).exists()
    assert result["storage_parts"] == 1 and not stale_part.exists()
    assert fresh_part.exists() and kept_instance.exists()
    assert result["local_parts"] == 1 and not (exports / ".part-lung_v1-123").exists()
    # finished exports' local copies go once old (their zips are in the storage)
    assert result["local_exports"] == 1 and not finished.exists() and recent.exists()
    assert result["scratch_dirs"] == 1 and not dead.exists()
    assert alive.exists() and other.exists()


def test_cleanup_on_s3_removes_orphaned_uploads_and_stale_multipart_uploads(s3_storage, project):
    orphan = default_storage.save("uploads/" + "d" * 32 + "/000000", ContentFile(b"DICM"))
    pending = default_storage.save("uploads/" + "e" * 32 + "/000000", ContentFile(b"DICM"))
    Job.objects.create(
        kind="imaging.import", params={"uploads": [{"name": "u", "key": pending, "size": 4}]}
    )
    backend = periodic.storage_backend()
    client = backend.connection.meta.client
    started = client.create_multipart_upload(
        Bucket=backend.bucket_name, Key=backend._normalize_name("exports/half.zip")
    )
    # Nothing is old yet: a cleanup now keeps everything.
    kept = periodic.cleanup()
    assert kept["upload_batches"] == 0 and kept["multipart_aborted"] == 0
    assert s3_storage.keys("uploads/") == sorted([orphan, pending])
    # A day later, the orphan and the abandoned multipart upload go.
    later = periodic.cleanup(now=timezone.now() + timedelta(hours=25))
    assert later["upload_batches"] == 1 and later["multipart_aborted"] >= 1
    assert s3_storage.keys("uploads/") == [pending]
    uploads = client.list_multipart_uploads(
        Bucket=backend.bucket_name, Prefix=backend._normalize_name("exports/")
    ).get("Uploads", [])
    assert started["UploadId"] not in [u["UploadId"] for u in uploads]


# -- the command ---------------------------------------------------------------------


def test_run_periodic_runs_named_jobs_and_refuses_unknown_names(project):
    out = io.StringIO()
    call_command("run_periodic", "overdue_reminders", "cleanup", stdout=out)
    assert "cleanup: job" in out.getvalue() and "succeeded" in out.getvalue()
    rows = Job.objects.filter(kind=periodic.JOB_KIND).order_by("pk")
    assert [(j.params["name"], j.state) for j in rows] == [
        ("overdue_reminders", Job.State.SUCCEEDED),
        ("cleanup", Job.State.SUCCEEDED),
    ]
    with pytest.raises(CommandError, match="Unknown periodic job\\(s\\): nightly"):
        call_command("run_periodic", "nightly")
    assert periodic.latest("cleanup") == rows[1]
