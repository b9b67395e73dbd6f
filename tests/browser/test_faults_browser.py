"""The database connection drops in the middle of saving a finding: the API
answers a clear 503 JSON error (no hang, no HTML page), the workstation keeps the
finding in its local buffer and says it is retrying, and the next try saves it,
once."""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection
from django.db.models.signals import pre_save

from annotation_server.reading.models import Finding
from tests.browser.helpers import SAVE_STATE, login, make_ct_case, open_read, seed_for
from tests.browser.test_reading_resilience import buffer, draw_box, findings_api

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def ct_case(request, project, reader_a, reader_b):
    return make_ct_case(project, reader_a, reader_b, seed=seed_for(request))


@pytest.fixture
def drop_connection_on_first_finding_save():
    """The first Finding save (in the live server's request thread) has its
    PostgreSQL backend terminated from another connection just before the
    INSERT: the INSERT meets a dead connection, as after a database restart."""
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    dropped: list[int] = []

    def drop(sender, instance, **kwargs):
        if dropped:
            return
        connection.ensure_connection()
        pid = connection.connection.info.backend_pid  # this (request) thread's backend
        with psycopg.connect(url, autocommit=True) as other:
            assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
            for _ in range(50):  # gone within a moment
                gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)"
                if other.execute(gone, [pid]).fetchone()[0]:
                    break
                time.sleep(0.1)
        dropped.append(pid)

    pre_save.connect(drop, sender=Finding, weak=False)
    yield dropped
    pre_save.disconnect(drop, sender=Finding)


def test_a_dropped_database_connection_keeps_the_draft_and_the_retry_saves_it(
    live_server, page, ct_case, drop_connection_on_first_finding_save, artifacts_dir
):
    task = ct_case["a"]
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    answers = []
    page.on(
        "response",
        lambda r: answers.append(r) if findings_api(r.url) and r.request.method == "POST" else None,
    )
    draw_box(page, 60, 60, 110, 100)
    page.wait_for_function(f"{SAVE_STATE} === 'retrying'")
    assert drop_connection_on_first_finding_save, "the fault fired"
    first = answers[0]
    assert first.status == 503, (first.status, first.text())
    assert first.headers["content-type"].startswith("application/json")
    assert first.json()["code"] == "database_unavailable"
    assert page.locator("[data-testid=save-state]").inner_text() == "Saving… retrying"
    uid = page.evaluate("window.__ws.store.list()[0].uid")
    assert uid in buffer(page, task)["findings"]
    page.screenshot(path=str(artifacts_dir / "workstation-database-dropped-en.png"))

    page.wait_for_function(f"{SAVE_STATE} === 'saved'", timeout=30_000)
    finding = Finding.objects.get(task=task)  # exactly one
    assert str(finding.uid) == uid and finding.geometry["kind"] == "box"
    assert buffer(page, task) is None
    assert answers[-1].status in (200, 201)
