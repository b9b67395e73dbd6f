"""Drafts, optimistic locking, submission and the read lock, through the API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_server.reading.models import Finding, ReadingTask
from tests import factories

pytestmark = pytest.mark.django_db


def _add(client, task, **geometry):
    return client.post(
        "/api/v1/findings/",
        {
            "task": task.pk,
            "finding_type": "nodule",
            "geometry": factories.nodule_geometry(**geometry),
            "attributes": {"nodule_type": "solid"},
        },
        format="json",
    )


def test_first_save_starts_the_read(tasks, reader_a, client_for):
    client = client_for(reader_a)
    response = _add(client, tasks["reader_a"])
    assert response.status_code == 201, response.json()
    task = ReadingTask.objects.get(pk=tasks["reader_a"].pk)
    assert task.state == ReadingTask.State.IN_PROGRESS
    assert task.started_at is not None


def test_stale_version_gets_a_conflict_and_changes_nothing(tasks, reader_a, client_for):
    tab1, tab2 = client_for(reader_a), client_for(reader_a)
    created = _add(tab1, tasks["reader_a"]).json()
    url = f"/api/v1/findings/{created['id']}/"
    first = tab1.patch(
        url,
        {"attributes": {"nodule_type": "part_solid"}, "version": created["version"]},
        format="json",
    )
    assert first.status_code == 200 and first.json()["version"] == created["version"] + 1
    second = tab2.patch(
        url,
        {"attributes": {"nodule_type": "ground_glass"}, "version": created["version"]},
        format="json",
    )
    assert second.status_code == 409
    assert second.json()["code"] == "version_conflict"
    assert second.json()["current_version"] == created["version"] + 1
    assert tab1.get(url).json()["attributes"] == {"nodule_type": "part_solid"}


def test_update_without_version_is_refused(tasks, reader_a, client_for):
    client = client_for(reader_a)
    created = _add(client, tasks["reader_a"]).json()
    response = client.patch(
        f"/api/v1/findings/{created['id']}/",
        {"attributes": {"nodule_type": "calcified"}},
        format="json",
    )
    assert response.status_code == 409


def test_bad_geometry_and_attributes_are_named(tasks, reader_a, client_for):
    client = client_for(reader_a)
    response = client.post(
        "/api/v1/findings/",
        {
            "task": tasks["reader_a"].pk,
            "finding_type": "nodule",
            "geometry": {"kind": "box", "shapes": [{"slice_index": 1, "points": [[1, 2], [3, 4]]}]},
            "attributes": {"malignancy": 7},
        },
        format="json",
    )
    assert response.status_code == 400
    errors = " ".join(response.json()["errors"])
    assert "cannot be drawn as 'box'" in errors and "between 1 and 5" in errors
    response = client.post(
        "/api/v1/findings/",
        {
            "task": tasks["reader_a"].pk,
            "finding_type": "nodule",
            "geometry": {"kind": "contour", "shapes": [{"slice_index": 1, "points": [[1, 2]]}]},
        },
        format="json",
    )
    assert response.status_code == 400
    assert "needs 3+ points" in " ".join(response.json()["errors"])


def test_submit_requires_required_fields_then_locks_the_read(tasks, reader_a, client_for):
    client = client_for(reader_a)
    task = tasks["reader_a"]
    created = _add(client, task).json()
    refused = client.post(f"/api/v1/reading-tasks/{task.pk}/submit/", {}, format="json")
    assert refused.status_code == 400
    errors = " ".join(refused.json()["errors"])
    assert "malignancy is required" in errors and "case: nodules_present is required" in errors
    client.patch(
        f"/api/v1/findings/{created['id']}/",
        {
            "attributes": factories.complete_nodule_attributes(),
            "version": created["version"],
        },
        format="json",
    )
    label = client.put(
        f"/api/v1/reading-tasks/{task.pk}/case-label/",
        {"values": {"nodules_present": True, "image_quality": 3}},
        format="json",
    )
    assert label.status_code == 200, label.json()
    an_hour_ago = timezone.now() - timedelta(hours=1)  # the client's total is capped by it
    ReadingTask.objects.filter(pk=task.pk).update(assigned_at=an_hour_ago)
    submitted = client.post(
        f"/api/v1/reading-tasks/{task.pk}/submit/", {"active_seconds": 95}, format="json"
    )
    assert submitted.status_code == 200, submitted.json()
    assert submitted.json()["state"] == "submitted"
    assert submitted.json()["active_seconds"] == 95
    # read-only from now on, for everyone
    locked = client.patch(
        f"/api/v1/findings/{created['id']}/",
        {
            "attributes": factories.complete_nodule_attributes(malignancy=1),
            "version": created["version"] + 1,
        },
        format="json",
    )
    assert locked.status_code == 409 and locked.json()["code"] == "read_locked"
    assert _add(client, task).status_code == 409
    again = client.put(
        f"/api/v1/reading-tasks/{task.pk}/case-label/",
        {"values": {"nodules_present": False}, "version": 1},
        format="json",
    )
    assert again.status_code == 409


def test_reader_cannot_write_into_another_readers_task(tasks, reader_a, client_for):
    response = _add(client_for(reader_a), tasks["reader_b"])
    assert response.status_code == 400
    assert tasks["reader_b"].findings.count() == 0


def test_a_reader_cannot_claim_a_finding_came_from_a_model(tasks, reader_a):
    """The origin of a finding is the server's: no model proposal, no model finding
    (a reader once created source "model_accepted" findings at will)."""
    from django.test import Client

    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert web.login(username=reader_a.username, password=factories.PASSWORD)
    body = {
        "task": tasks["reader_a"].pk,
        "finding_type": "nodule",
        "geometry": factories.nodule_geometry(),
        "attributes": {"nodule_type": "solid"},
    }
    for source in ("model_accepted", "model_edited"):
        refused = web.post(
            "/api/v1/findings/", {**body, "source": source}, content_type="application/json"
        )
        assert refused.status_code == 400
        assert "set by the server" in refused.json()["source"][0]
    created = web.post("/api/v1/findings/", body, content_type="application/json").json()
    assert created["source"] == "manual"
    relabel = web.patch(
        f"/api/v1/findings/{created['id']}/",
        {"source": "model_accepted", "version": created["version"]},
        content_type="application/json",
    )
    assert relabel.status_code == 400
    assert Finding.objects.get(pk=created["id"]).source == "manual"
