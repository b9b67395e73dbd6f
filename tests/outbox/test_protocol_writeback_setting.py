"""The protocol's `writeback_reads` (what sending a case writes back) is set in
the console's protocol form and over REST, audited like the other protocol
fields; a bad value is refused and changes nothing; left out of a form post it
keeps its setting."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation_server.audit.models import AuditEvent
from tests.projects.test_console_pages import create_post, signed_in

pytestmark = pytest.mark.django_db


def _events(project):
    return list(
        AuditEvent.objects.filter(
            action="project.protocol_updated", project_id=project.pk
        ).order_by("id")
    )


def test_writeback_reads_is_set_in_the_protocol_form_and_audited(project, manager):
    url = reverse("projects:project_edit", args=["lung"])
    page = signed_in(manager).get(url).content.decode()
    assert 'name="protocol-writeback_reads"' in page and 'value="model"' in page
    response = signed_in(manager).post(
        url, create_post(**{"project-slug": "lung", "protocol-writeback_reads": "reads"})
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    project.protocol.refresh_from_db()
    assert project.protocol.writeback_reads == "reads"
    (event,) = _events(project)
    assert event.data["changed"]["writeback_reads"] == ["reference", "reads"]

    # left out of the post, it keeps its setting
    kept = signed_in(manager).post(url, create_post(**{"project-slug": "lung"}))
    assert kept.status_code == 302
    project.protocol.refresh_from_db()
    assert project.protocol.writeback_reads == "reads"

    refused = signed_in(manager).post(
        url, create_post(**{"project-slug": "lung", "protocol-writeback_reads": "everything"})
    )
    assert refused.status_code == 400
    assert 'has-error" data-field="protocol-writeback_reads"' in refused.content.decode()
    project.protocol.refresh_from_db()
    assert project.protocol.writeback_reads == "reads"


def test_writeback_reads_over_rest_with_audit(session_client_for, project, manager):
    client = session_client_for(manager)
    shown = client.get("/api/v1/projects/lung/").json()["protocol"]
    assert shown["writeback_reads"] == "reference"
    response = client.patch(
        "/api/v1/projects/lung/", {"protocol": {"writeback_reads": "model"}}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["protocol"]["writeback_reads"] == "model"
    project.protocol.refresh_from_db()
    assert project.protocol.writeback_reads == "model"
    (event,) = _events(project)
    assert event.data["changed"]["writeback_reads"] == ["reference", "model"]
    refused = client.patch(
        "/api/v1/projects/lung/", {"protocol": {"writeback_reads": "all"}}, format="json"
    )
    assert refused.status_code == 400 and "writeback_reads" in str(refused.json())
    project.protocol.refresh_from_db()
    assert project.protocol.writeback_reads == "model"
