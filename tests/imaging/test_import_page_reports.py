"""The import page: every import in "recent imports" (the demo's too), each with
a report that links the cases it created and never contradicts itself, the site
choice kept; and the manager's read-only series viewer those reports open."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import fixtures
from annotation_server.imaging import views
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import from_paths
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def ct_dir(tmp_path) -> Path:
    fixtures.generate_ct(tmp_path / "ct", slices=4, seed=11, matrix=64)
    (tmp_path / "ct" / "truth.json").unlink()
    return tmp_path / "ct"


def _upload(client, project, ct_dir, site=""):
    files = []
    for path in sorted(ct_dir.glob("*.dcm")):
        f = io.BytesIO(path.read_bytes())
        f.name = path.name
        files.append(f)
    data = {"files": files}
    if site:
        data["site"] = site
    response = client.post(f"/api/v1/projects/{project.slug}/imports/", data, format="multipart")
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    jobs.execute(job_id)
    return Job.objects.get(pk=job_id)


def _page(client, url):
    response = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200, url
    return response.content.decode()


def test_recent_imports_list_the_demos_import_with_its_report_and_cases(
    project, manager, ct_dir, client
):
    from annotation_server.imaging.ingest.sources import Limits

    report = ingest(project, from_paths([ct_dir], Limits()), user=manager, source="demo")
    assert report.cases and report.event_id
    client.force_login(manager)
    page = _page(client, f"/projects/{project.slug}/import/")
    assert f'data-event="{report.event_id}"' in page and "demo data" in page
    url = f"/projects/{project.slug}/import/reports/{report.event_id}/"
    assert f'href="{url}"' in page
    body = _page(client, url)
    assert "Every file was imported (4 files)." in body
    case = Case.objects.get(project=project, code=report.cases[0])
    assert f'data-case="{case.code}"' in body
    assert f"/projects/{project.slug}/cases/{case.pk}/images/" in body
    assert "not imported" not in body


def test_reimported_duplicates_are_reported_without_contradiction(
    project, manager, ct_dir, client, session_client_for
):
    api = session_client_for(manager)
    first = _upload(api, project, ct_dir)
    second = _upload(api, project, ct_dir)
    assert second.result["summary"]["imported"] == 0
    assert second.result["summary"]["duplicates"] == 4
    client.force_login(manager)
    response = client.get(f"/projects/{project.slug}/import/jobs/{second.pk}/")
    assert response.status_code == 302
    body = _page(client, response["Location"])
    assert "Nothing new: all 4 files had already been imported." in body
    assert "Every file was imported" not in body
    assert "4 files not imported" in body and body.count("already imported, skipped") == 4
    assert "0 cases created" in body
    page = _page(client, f"/projects/{project.slug}/import/")
    assert f'data-job="{first.pk}"' in page and f'data-job="{second.pk}"' in page


def test_the_site_of_the_last_import_is_chosen_again(
    project, manager, ct_dir, client, session_client_for
):
    factories.SiteFactory(code="S77", name="Site 77")
    _upload(session_client_for(manager), project, ct_dir, site="S77")
    client.force_login(manager)
    page = _page(client, f"/projects/{project.slug}/import/")
    assert '<option value="S77" selected>' in page


def test_a_failed_import_job_is_listed_from_its_job(project, manager, client):
    job = Job.objects.create(
        kind="imaging.import",
        project=project,
        created_by=manager,
        state=Job.State.FAILED,
        error="storage unavailable",
    )
    client.force_login(manager)
    page = _page(client, f"/projects/{project.slug}/import/")
    assert f'data-job="{job.pk}"' in page and "storage unavailable" in page
    assert client.get(f"/projects/{project.slug}/import/jobs/{job.pk}/").status_code == 404


@pytest.mark.parametrize(
    "summary, expected",
    [
        ({"files": 0}, "The import contained no file."),
        ({"files": 1, "imported": 1}, "The file was imported."),
        ({"files": 3, "imported": 0, "duplicates": 3}, "all 3 files had already"),
        ({"files": 3, "imported": 1, "duplicates": 1, "rejected": 1}, "1 of 3 files imported"),
    ],
)
def test_the_verdict_agrees_with_the_numbers(summary, expected):
    from django.utils import translation

    with translation.override("en"):
        assert expected in views.verdict(summary)


def test_reports_and_viewer_are_for_the_projects_managers_only(
    project, manager, reader_a, outsider, ct_dir, client
):
    from annotation_server.imaging.ingest.sources import Limits

    report = ingest(project, from_paths([ct_dir], Limits()), user=manager, source="cli")
    case = Case.objects.get(project=project, code=report.cases[0])
    urls = [
        f"/projects/{project.slug}/import/reports/{report.event_id}/",
        f"/projects/{project.slug}/cases/{case.pk}/images/",
    ]
    for person in (reader_a, outsider):
        client.force_login(person)
        for url in urls:
            assert client.get(url).status_code in (403, 404), (person, url)
    other = factories.ProjectFactory(slug="other")
    client.force_login(manager)
    assert client.get(f"/projects/{other.slug}/import/reports/{report.event_id}/").status_code in (
        403,
        404,
    )
    viewer = _page(client, urls[1])
    assert 'data-testid="series-viewer"' in viewer and '"writable": false' in viewer
    assert "refset/viewer/seriesview.js" in viewer


def test_the_import_page_links_the_quarantine_review_list(project, manager, reader_a, client):
    """Issue 12: the import page says images are quarantined and links the review
    list. Both are its managers' alone: the project's reader is refused the import
    page (403) and another project's manager does not see it (404), so neither is
    shown the link, and neither reaches the list (404)."""
    from annotation_server.accounts.models import Role
    from annotation_server.imaging.models import Quarantine
    from annotation_server.projects.services import grant_role

    other_manager = factories.UserFactory(username="other_manager")
    grant_role(factories.ProjectFactory(slug="other"), other_manager, Role.MANAGER)
    page_url = f"/projects/{project.slug}/import/"
    review = f'href="/projects/{project.slug}/quarantine/"'
    client.force_login(manager)
    quiet = _page(client, page_url)
    assert 'data-testid="quarantine-link"' in quiet and review in quiet
    assert "quarantine-banner" not in quiet  # nothing pending
    Quarantine.objects.create(
        project=project,
        reason="burned-in text detected",
        sop_instance_uid="2.25.1",
        series_uid="2.25.2",
        sha256="0" * 64,
        file="quarantine/x",
    )
    pending = _page(client, page_url)
    assert "1 image is quarantined for review" in pending
    assert 'data-testid="quarantine-review-link"' in pending and review in pending
    assert client.get(f"/projects/{project.slug}/quarantine/").status_code == 200
    for person, status in ((reader_a, 403), (other_manager, 404)):
        client.force_login(person)
        refused = client.get(page_url)
        assert refused.status_code == status and "quarantine-link" not in refused.content.decode()
        assert client.get(f"/projects/{project.slug}/quarantine/").status_code == 404
