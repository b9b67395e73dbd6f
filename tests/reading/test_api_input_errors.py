"""Inputs the API fuzz (tests/fuzz) sent that answered 500: each now answers 4xx
with the field or the reason named."""

from __future__ import annotations

import pytest

from annotation_server.reading.models import CaseLabel, Finding
from tests import factories

pytestmark = pytest.mark.django_db


def _finding(client, task) -> dict:
    response = client.post(
        "/api/v1/findings/",
        {
            "task": task.pk,
            "finding_type": "nodule",
            "geometry": factories.nodule_geometry(),
            "attributes": {"nodule_type": "solid"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.mark.parametrize("version", ["abc", "1e309", "%FF%FE"])
def test_delete_with_a_version_that_is_not_a_number_is_a_field_error(
    tasks, reader_a, session_client_for, version
):
    client = session_client_for(reader_a)
    created = _finding(client, tasks["reader_a"])
    response = client.delete(f"/api/v1/findings/{created['id']}/?version={version}")
    assert response.status_code == 400
    assert "version" in response.json()
    assert Finding.objects.filter(pk=created["id"]).exists()


def test_delete_with_a_list_body_is_refused_cleanly(tasks, reader_a, session_client_for):
    client = session_client_for(reader_a)
    created = _finding(client, tasks["reader_a"])
    response = client.delete(f"/api/v1/findings/{created['id']}/", [1, 2], format="json")
    # a list carries no version: answered like a delete without one (was 500)
    assert response.status_code == 409
    assert response.json()["detail"]
    assert Finding.objects.filter(pk=created["id"]).exists()


def test_delete_with_the_right_version_still_works(tasks, reader_a, session_client_for):
    client = session_client_for(reader_a)
    created = _finding(client, tasks["reader_a"])
    response = client.delete(f"/api/v1/findings/{created['id']}/?version={created['version']}")
    assert response.status_code == 204


@pytest.mark.parametrize("body", [{}, {"version": 1}, {"values": ["a"]}, {"values": "x"}])
def test_case_label_put_without_an_object_of_values_is_a_field_error(
    tasks, reader_a, session_client_for, body
):
    task = tasks["reader_a"]
    response = session_client_for(reader_a).put(
        f"/api/v1/reading-tasks/{task.pk}/case-label/", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()["values"]
    assert not CaseLabel.objects.filter(task=task).exists()


def test_case_label_put_with_values_still_saves(tasks, reader_a, session_client_for):
    task = tasks["reader_a"]
    response = session_client_for(reader_a).put(
        f"/api/v1/reading-tasks/{task.pk}/case-label/", {"values": {}}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["values"] == {}
