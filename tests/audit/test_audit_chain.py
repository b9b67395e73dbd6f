"""The audit log is append-only and its hash chain exposes tampering."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from annotation_server.audit import services
from annotation_server.audit.models import AppendOnlyError, AuditEvent

pytestmark = pytest.mark.django_db


def test_each_event_carries_the_previous_hash(reader_a):
    first = services.record("test.first", actor=reader_a, data={"n": 1})
    second = services.record("test.second", actor=reader_a, obj=reader_a, data={"n": 2})
    assert first.prev_hash == services.GENESIS_HASH
    assert second.prev_hash == first.hash
    assert second.object_type == "auth.user" and second.object_id == str(reader_a.pk)
    assert services.verify_chain().ok


def test_model_refuses_update_and_delete(reader_a):
    event = services.record("test.x", actor=reader_a)
    event.action = "changed"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()


def test_database_trigger_refuses_sql_update():
    assert connection.vendor == "postgresql", "the suite runs on PostgreSQL (make test)"
    services.record("test.y")
    with pytest.raises(Exception, match="append-only"), transaction.atomic():
        AuditEvent.objects.update(action="rewritten")


def test_tampering_is_detected_at_the_changed_row(reader_a):
    events = [services.record("test.z", actor=reader_a, data={"i": i}) for i in range(5)]
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # a superuser with replication role bypasses the trigger: an attacker with DB access
            cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute(
            "UPDATE audit_auditevent SET data = %s WHERE id = %s", ['{"i": 99}', events[2].id]
        )
        if connection.vendor == "postgresql":
            cur.execute("SET LOCAL session_replication_role = origin")
    report = services.verify_chain()
    assert not report.ok
    assert report.first_bad_id == events[2].id
    assert report.checked == 2 + AuditEvent.objects.filter(id__lt=events[0].id).count()


def test_case_transitions_are_audited_and_illegal_ones_refused(case, manager):
    from annotation_server.projects.models import Case
    from annotation_server.projects.services import TransitionError, transition

    with pytest.raises(TransitionError, match="cannot go from reading to frozen"):
        transition(case, Case.State.FROZEN, by=manager)
    transition(case, Case.State.ARBITRATION, by=manager, reason="readers disagree")
    event = AuditEvent.objects.filter(action="case.state_changed").last()
    assert event.data == {"from": "reading", "to": "arbitration", "reason": "readers disagree"}
    assert event.actor_id == manager.pk
