"""The qualification app as its own layer: its models keep the tables reading
created, reading reaches it only through the hook, and its refusals take the one
domain-error path with the statuses the API has always answered."""

from __future__ import annotations

import pytest

from annotation_server import registry
from annotation_server.projects.models import Case
from annotation_server.qualification import services as q
from annotation_server.qualification.models import QualificationAttempt, QualificationTest
from annotation_server.reading.models import ReadingTask
from tests import factories


def test_the_models_keep_the_tables_the_reading_app_created():
    assert QualificationTest._meta.db_table == "reading_qualificationtest"
    assert QualificationAttempt._meta.db_table == "reading_qualificationattempt"
    through = QualificationTest.cases.through._meta.db_table
    assert through == "reading_qualificationtest_cases"
    assert ReadingTask._meta.get_field("attempt").related_model is QualificationAttempt


def test_reading_scores_an_attempt_only_through_the_registered_hook():
    assert registry.HOOKS["reading.attempt_read_submitted"] == (
        "annotation_server.qualification.services.after_submit",
    )


@pytest.mark.django_db
def test_a_refused_start_is_a_409_with_the_qualification_code(
    project, manager, reader_a, client_for
):
    test = q.create_test(project, name="empty", by=manager)
    response = client_for(reader_a).post(
        f"/api/v1/qualification-tests/{test.pk}/start/", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": "The qualification set has no cases yet.",
        "code": "qualification",
    }


@pytest.mark.django_db
def test_a_refused_reference_is_a_400(project, manager, client_for):
    test = q.create_test(project, name="set", by=manager)
    target = factories.CaseFactory(project=project, code="Q1", state=Case.State.QC)
    q.add_case(test, target, by=manager)
    source = factories.CaseFactory(project=project, code="R1", state=Case.State.QC)
    api = client_for(manager)
    copied = api.post(
        f"/api/v1/qualification-tests/{test.pk}/copy-reference/",
        {"source": source.pk, "target": target.pk},
        format="json",
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert copied.status_code == 400
    assert copied.json() == {"detail": "Case R1 is not adjudicated.", "code": "invalid_reference"}
    imported = api.post(
        f"/api/v1/qualification-tests/{test.pk}/reference/", {"cases": []}, format="json"
    )
    assert imported.status_code == 400 and imported.json()["code"] == "invalid_reference"


@pytest.mark.django_db
def test_creating_a_test_on_a_project_you_cannot_see_answers_like_a_missing_one(
    project, outsider, reader_a
):
    """A 403 for an existing slug and a 400 for a missing one told outsiders which
    projects exist."""
    from django.test import Client

    web = Client()
    assert web.login(username=outsider.username, password=factories.PASSWORD)
    body = {"name": "probe"}
    hidden = web.post(
        "/api/v1/qualification-tests/",
        {**body, "project": project.slug},
        content_type="application/json",
    )
    missing = web.post(
        "/api/v1/qualification-tests/",
        {**body, "project": "no-such-project"},
        content_type="application/json",
    )
    assert hidden.status_code == missing.status_code == 400
    assert hidden.json()["project"][0].replace(project.slug, "X") == missing.json()["project"][
        0
    ].replace("no-such-project", "X")
    member = Client()
    assert member.login(username=reader_a.username, password=factories.PASSWORD)
    refused = member.post(
        "/api/v1/qualification-tests/",
        {**body, "project": project.slug},
        content_type="application/json",
    )
    assert refused.status_code == 403  # a member knows the project exists
