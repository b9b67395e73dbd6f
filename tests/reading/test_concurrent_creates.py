"""Two creates of one finding uid at the same moment (found by bench/load.py)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from annotation_server.reading.models import Finding, ReadingTask
from tests import factories


def _waiting_on_locks() -> int:
    with connection.cursor() as cursor:
        # Activity is read once per transaction unless the snapshot is cleared.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_tabs_creating_one_uid_at_once_make_one_finding(tasks, reader_a):
    """Two tabs of one read send the create of the same uid at once (the second
    restored the first one's unsaved buffer): one finding, one 201 and one 200,
    never a 500 from the duplicate uid."""
    assert connection.vendor == "postgresql", "row locks need PostgreSQL (make test)"
    task = tasks["reader_a"]
    uid = str(uuid.uuid4())
    body = {
        "task": task.pk,
        "uid": uid,
        "finding_type": "nodule",
        "geometry": factories.nodule_geometry(),
        "attributes": factories.complete_nodule_attributes(),
    }
    statuses, errors = [], []

    def create():
        try:
            client = APIClient()
            client.force_login(reader_a)
            statuses.append(client.post("/api/v1/findings/", body, format="json").status_code)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    # Hold the read's row lock (as a save in flight does) until both creates wait.
    with transaction.atomic():
        ReadingTask.objects.select_for_update().get(pk=task.pk)
        threads = [threading.Thread(target=create) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while _waiting_on_locks() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _waiting_on_locks() == 2, "both creates should be waiting for the read's lock"
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(statuses) == [200, 201]
    assert Finding.objects.filter(uid=uid).count() == 1
    assert Finding.objects.filter(task=task).count() == 1
