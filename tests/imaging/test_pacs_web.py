"""The import page's PACS flow: save a connection, query, pull (job) — against Orthanc."""

from __future__ import annotations

import pytest
from django.test import Client

import fixtures
from annotation_server.imaging.models import Instance, PacsConnection, Study
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from tests.orthanc import run_orthanc

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def test_manager_saves_queries_and_pulls_from_a_pacs(
    project, manager, reader_a, tmp_path, django_capture_on_commit_callbacks
):
    truth = fixtures.generate_ct(tmp_path / "ct", slices=3, seed=31, matrix=64)
    with run_orthanc(tmp_path / "orthanc") as orthanc:
        for path in sorted((tmp_path / "ct").glob("*.dcm")):
            orthanc.upload(path)
        web = Client(HTTP_ACCEPT_LANGUAGE="en")
        web.force_login(manager)
        base = f"/projects/{project.slug}"
        # a reader may not even see the form's target
        reader = Client()
        reader.force_login(reader_a)
        assert reader.post(f"{base}/pacs/", {"name": "x"}).status_code == 403

        refused = web.post(
            f"{base}/pacs/",
            {"name": "PACS", "base_url": orthanc.dicomweb_url, "auth": "basic", "username": "u"},
            follow=True,
        )
        assert "needs a password or token" in refused.content.decode()
        web.post(
            f"{base}/pacs/",
            {"name": "Hospital A", "base_url": orthanc.dicomweb_url, "auth": "none"},
        )
        connection = PacsConnection.objects.get(project=project)
        page = web.get(f"{base}/import/").content.decode()
        assert "Hospital A" in page

        patient_id = truth["phi"]["attributes"]["PatientID"]
        found = web.get(f"{base}/pacs/{connection.pk}/", {"PatientID": patient_id, "go": 1})
        html = found.content.decode()
        assert found.status_code == 200 and truth["study_instance_uid"] in html

        with django_capture_on_commit_callbacks(execute=False):
            web.post(f"{base}/pacs/{connection.pk}/pull/", {"study": [truth["study_instance_uid"]]})
        job = Job.objects.get(kind="imaging.pull_pacs")
        assert jobs.execute(job.pk) == Job.State.SUCCEEDED
        job.refresh_from_db()
        assert job.result["summary"]["imported"] == 3, job.result
    assert Instance.objects.filter(series__study__project=project).count() == 3
    assert Study.objects.filter(project=project).exists()
    assert not Study.objects.filter(study_uid=truth["study_instance_uid"]).exists()


def test_unreachable_pacs_shows_an_error_naming_it(project, manager):
    connection = PacsConnection.objects.create(
        project=project, name="down", base_url="http://127.0.0.1:9/dicom-web"
    )
    web = Client()
    web.force_login(manager)
    page = web.get(f"/projects/{project.slug}/pacs/{connection.pk}/", {"PatientID": "x", "go": 1})
    assert "127.0.0.1:9" in page.content.decode()
