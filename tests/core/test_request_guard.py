"""NUL in a URL (annotation_server/request_guard.py): PostgreSQL text cannot hold
it, and the API fuzz found it answering 500 wherever a path or query value reached
a query. Now 400 with a message, before any view runs."""

from __future__ import annotations

import pytest

from annotation_server.projects.models import Project

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/projects/lung%00/",
        "/api/v1/projects/lung%00/progress/",
        "/api/v1/cases/?project=lung%00",
        "/dicomweb/studies?PatientID=P%00",
        "/dicomweb/studies/1.2%00.3/series",
    ],
)
def test_nul_in_an_api_url_is_a_400_with_a_message(project, manager, client_for, url):
    response = client_for(manager).get(url)
    assert response.status_code == 400
    assert response.json()["detail"]
    assert Project.objects.filter(slug="lung").exists()


def test_nul_in_a_page_url_is_a_400(project, manager, client):
    client.force_login(manager)
    response = client.get("/worklist/?q=%00")
    assert response.status_code == 400


def test_urls_without_nul_are_untouched(project, manager, client_for):
    assert client_for(manager).get("/api/v1/projects/lung/").status_code == 200
