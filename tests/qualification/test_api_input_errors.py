"""Inputs the API fuzz (tests/fuzz) sent that answered 500: each now answers 400
with the reason or the field named."""

from __future__ import annotations

import pytest

from annotation_server.qualification.models import QualificationTest

pytestmark = pytest.mark.django_db


@pytest.fixture
def qualification(project):
    return QualificationTest.objects.create(project=project, name="Fuzz set")


@pytest.mark.parametrize("body", [[1, 2], "cases", 7])
def test_reference_that_is_not_an_object_is_refused_with_the_expected_shape(
    qualification, manager, session_client_for, body
):
    response = session_client_for(manager).post(
        f"/api/v1/qualification-tests/{qualification.pk}/reference/", body, format="json"
    )
    assert response.status_code == 400
    assert "cases" in response.json()["detail"]


def test_creating_a_test_for_a_project_slug_with_nul_is_a_field_error(
    project, manager, session_client_for
):
    response = session_client_for(manager).post(
        "/api/v1/qualification-tests/", {"project": "lu\x00ng", "name": "x"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["project"]
    assert not QualificationTest.objects.exists()
