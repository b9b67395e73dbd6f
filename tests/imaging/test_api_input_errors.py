"""Inputs the API fuzz (tests/fuzz) sent, or that its finds pointed to, that
answered 500: each now answers 400 with the reason or the field named."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.permissions.routes import build_scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(site):
    return build_scenario(site)


@pytest.mark.parametrize(
    "query", ["PatientID=" + "*" * 5000, "PatientID=P" + "?" * 100, "Modality=" + "C" * 65]
)
@pytest.mark.parametrize("level", ["studies", "series", "instances"])
def test_qido_match_value_longer_than_any_attribute_is_a_400(scenario, client, level, query):
    client.force_login(scenario.users["manager"])
    response = client.get(f"/dicomweb/{level}?{query}")
    assert response.status_code == 400
    assert "64" in response.json()["detail"]


def test_qido_wildcards_still_match(scenario, client):
    client.force_login(scenario.users["manager"])
    patient = scenario.series.study.patient_pseudo_id
    response = client.get(f"/dicomweb/studies?PatientID={patient[:2]}***{'*?' * 20}*")
    assert response.status_code == 200
    response = client.get(f"/dicomweb/studies?PatientID={patient[:2]}*")
    assert [s["0020000D"]["Value"][0] for s in response.json()] == [scenario.study_uid]


@pytest.fixture
def keyholder(scenario):
    manager = scenario.users["manager"]
    manager.user_permissions.add(Permission.objects.get(codename="view_identity_key"))
    return type(manager).objects.get(pk=manager.pk)


@pytest.mark.parametrize(
    "body", [[1, 2], {"replacement": "a\x00b", "reason": "x"}, {"replacement": "x"}]
)
def test_identity_reveal_with_a_malformed_body_is_a_field_error(
    scenario, keyholder, session_client_for, body
):
    response = session_client_for(keyholder).post(
        f"/api/v1/projects/{scenario.project.slug}/identity/reveal/", body, format="json"
    )
    assert response.status_code == 400
    assert response.json()


def test_import_naming_a_site_code_with_nul_is_a_field_error(scenario, session_client_for):
    upload = SimpleUploadedFile("a.dcm", b"not dicom", content_type="application/dicom")
    response = session_client_for(scenario.users["manager"]).post(
        f"/api/v1/projects/{scenario.project.slug}/imports/",
        {"files": [upload], "site": "S\x0001"},
        format="multipart",
    )
    assert response.status_code == 400
    assert response.json()["site"]
