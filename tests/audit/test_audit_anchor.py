"""Signed anchors of the chain's head, kept outside the table, expose what the
chain alone cannot: cut-off newest rows and a rewrite with every later hash
recomputed. `verify_audit` says which row and what went wrong."""

from __future__ import annotations

import io
import json
import logging
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.db import OperationalError, connection, transaction
from django.db.transaction import TransactionManagementError

from annotation_server.audit import services
from annotation_server.audit.models import AuditEvent
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job

pytestmark = pytest.mark.django_db


@contextmanager
def trigger_disabled():
    """What an attacker with database-owner rights does first."""
    assert connection.vendor == "postgresql", "the suite runs on PostgreSQL (make test)"
    with connection.cursor() as cur:
        # ALTER TABLE refuses while this transaction has deferred FK checks pending
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cur.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_change")
    try:
        yield
    finally:
        with connection.cursor() as cur:
            cur.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_no_change")
            cur.execute("SET CONSTRAINTS ALL DEFERRED")


def command(name: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def events(n: int, start: int = 0) -> list[AuditEvent]:
    return [services.record("test.anchor", data={"i": i}) for i in range(start, start + n)]


def test_intact_anchored_chain_verifies_with_exit_0():
    rows = events(4)
    assert command("anchor_audit")[0] == 0
    events(2, start=4)
    code, out, err = command("verify_audit")
    assert code == 0, err
    assert "Audit chain intact: 6 events, 1 anchor checked." in out
    assert f"4 events up to row #{rows[-1].id}" in out
    assert "2 events after the latest anchor" in out


def test_verify_audit_without_anchors_passes_but_warns():
    events(2)
    code, out, _ = command("verify_audit")
    assert code == 0
    assert "no anchors" in out and "anchor_audit" in out


def test_anchor_is_signed_and_kept_in_storage_and_in_the_log(caplog):
    rows = events(3)
    with caplog.at_level(logging.INFO, logger="refset.audit.anchor"):
        anchor = services.write_anchor()
    assert anchor.name.startswith("audit/anchors/") and default_storage.exists(anchor.name)
    with default_storage.open(anchor.name, "rb") as fh:
        stored = json.loads(fh.read())
    payload = stored["anchor"]
    assert (payload["count"], payload["head_id"], payload["head_hash"]) == (
        3,
        rows[-1].id,
        rows[-1].hash,
    )
    assert stored["signature"] == services.sign_anchor(payload)
    assert stored["signature"] != services.sign_anchor(payload, "another key")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "refset.audit.anchor"]
    assert stored["signature"] in line and rows[-1].hash in line


def test_truncating_the_newest_rows_is_detected_by_the_anchor():
    rows = events(5)
    services.write_anchor()
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute("DELETE FROM audit_auditevent WHERE id >= %s", [rows[3].id])
    assert services.verify_chain(anchors=False).ok  # the chain alone cannot see it
    code, _, err = command("verify_audit")
    assert code == 1
    assert f"BROKEN at row #{rows[4].id}" in err
    assert "fewer rows than the anchor of" in err and "(truncation)" in err
    report = services.verify_chain()
    assert not report.ok and report.first_bad_id == rows[4].id
    job = Job.objects.create(kind="audit.verify_chain")
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.result["ok"] is False and "truncation" in job.result["problem"]


def test_rewriting_a_row_and_rehashing_every_later_row_is_detected_by_the_anchor():
    rows = events(3)
    services.write_anchor()  # older anchor: rows up to #3 are intact
    rows += events(4, start=3)
    services.write_anchor()
    events(1, start=7)  # not anchored yet
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute(
            "UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"i": 99}', rows[4].id]
        )
        prev_hash = rows[3].hash
        for event in AuditEvent.objects.filter(id__gte=rows[4].id).order_by("id"):
            new_hash = services.compute_hash(prev_hash, services._fields(event))
            cur.execute(
                "UPDATE audit_auditevent SET prev_hash = %s, hash = %s WHERE id = %s",
                [prev_hash, new_hash, event.id],
            )
            prev_hash = new_hash
    assert services.verify_chain(anchors=False).ok  # a valid chain again
    code, _, err = command("verify_audit")
    assert code == 1
    assert f"BROKEN at row #{rows[-1].id}" in err
    assert f"head hash at row #{rows[-1].id} differs from the anchor of" in err
    assert f"after row #{rows[2].id} were rewritten and re-hashed" in err


def test_a_tampered_anchor_file_is_detected():
    events(5)
    anchor = services.write_anchor()
    with default_storage.open(anchor.name, "rb") as fh:
        stored = json.loads(fh.read())
    stored["anchor"]["count"] = 3  # to hide the truncation of two rows
    default_storage.delete(anchor.name)
    default_storage.save(anchor.name, ContentFile(json.dumps(stored).encode()))
    code, _, err = command("verify_audit")
    assert code == 1
    assert "signature invalid" in err and anchor.name in err


def test_an_anchor_signed_with_another_key_is_refused(settings):
    events(2)
    settings.REFSET_AUDIT_ANCHOR_KEY = "the attacker's key"
    services.write_anchor()
    settings.REFSET_AUDIT_ANCHOR_KEY = "test-anchor-key"
    assert "signature invalid" in command("verify_audit")[2]


def test_anchor_key_falls_back_to_a_salted_secret_key(settings):
    settings.REFSET_AUDIT_ANCHOR_KEY = ""
    events(2)
    services.write_anchor()
    assert command("verify_audit")[0] == 0
    settings.SECRET_KEY = "rotated-" + settings.SECRET_KEY
    assert "signature invalid" in command("verify_audit")[2]


def test_anchor_audit_refuses_to_anchor_a_broken_chain():
    rows = events(3)
    with trigger_disabled(), connection.cursor() as cur:
        cur.execute("UPDATE audit_auditevent SET action = 'forged' WHERE id = %s", [rows[1].id])
    code, _, err = command("anchor_audit")
    assert code == 1 and f"row #{rows[1].id}" in err and "does not match its hash" in err
    assert services.anchor_names() == []


def test_anchor_job_verifies_then_writes_an_anchor(reader_a):
    rows = events(3)
    job = jobs.enqueue("audit.anchor", user=reader_a)
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.result["count"] == 3 and job.result["head_id"] == rows[-1].id
    assert services.anchor_names() == [job.result["stored_as"]]
    assert "anchored 3 events" in job.log


def test_postgresql_refuses_raw_sql_update_and_delete():
    assert connection.vendor == "postgresql", "the suite runs on PostgreSQL (make test)"
    services.record("test.sql")
    for sql in ("UPDATE audit_auditevent SET action = 'x'", "DELETE FROM audit_auditevent"):
        with (
            pytest.raises(Exception, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(sql)


def test_an_action_cannot_commit_without_its_audit_event(reader_a, monkeypatch):
    def locked(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(AuditEvent, "save", locked)
    user_model = get_user_model()
    with transaction.atomic():
        user_model.objects.filter(pk=reader_a.pk).update(first_name="changed")
        with pytest.raises(OperationalError):
            services.record("test.lost", actor=reader_a)
        # a caller that swallows the error cannot go on, nor commit its action
        with pytest.raises(TransactionManagementError):
            user_model.objects.count()
    reader_a.refresh_from_db()
    assert reader_a.first_name != "changed"


def test_a_disk_full_while_writing_an_anchor_leaves_no_partial_anchor(monkeypatch, caplog):
    """FileSystemStorage writes into the final name: cut off by a full disk it
    would leave half a JSON file, which verification reports as tampering."""
    import errno

    from django.core.files.storage import FileSystemStorage

    events(2)
    services.write_anchor()
    real_save = FileSystemStorage._save

    def cut_off(self, name, content):
        path = self.path(name)
        with open(path, "wb") as fh:
            fh.write(content.read()[:20])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FileSystemStorage, "_save", cut_off)
    events(1, start=2)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="refset.audit.anchor"), pytest.raises(OSError):
        services.write_anchor()
    assert not [r for r in caplog.records if r.name == "refset.audit.anchor"]
    monkeypatch.setattr(FileSystemStorage, "_save", real_save)
    assert len(services.anchor_names()) == 1
    code, out, err = command("verify_audit")
    assert code == 0, (out, err)
