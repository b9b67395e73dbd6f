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
    project, manager, reader_a, tmp_path, django_capture_on_commit_callbacks, settings
):
    truth = fixtures.generate_ct(tmp_path / "ct", slices=3, seed=31, matrix=64)
    with run_orthanc(tmp_path / "orthanc") as orthanc:
        settings.REFSET_PACS_ALLOWED_HOSTS = [orthanc.host]  # the operator's allowlist
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


def test_unreachable_pacs_shows_an_error_naming_it(project, manager, settings):
    settings.REFSET_PACS_ALLOWED_HOSTS = ["127.0.0.1:9"]
    connection = PacsConnection.objects.create(
        project=project, name="down", base_url="http://127.0.0.1:9/dicom-web"
    )
    web = Client()
    web.force_login(manager)
    page = web.get(f"/projects/{project.slug}/pacs/{connection.pk}/", {"PatientID": "x", "go": 1})
    assert "127.0.0.1:9" in page.content.decode()


def test_a_manager_cannot_point_a_connection_outside_the_operators_allowlist(
    project, manager, settings
):
    """SSRF: the saved token would be sent to any address, loopback included."""
    settings.REFSET_PACS_ALLOWED_HOSTS = ["pacs.hospital.example:8042", "10.20.0.0/16"]
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    web.force_login(manager)
    base = f"/projects/{project.slug}"
    for url in (
        "http://127.0.0.1:8000/dicom-web",
        "http://169.254.169.254/latest",
        "http://pacs.hospital.example:9999/dicom-web",
        "http://10.21.0.1/dicom-web",
    ):
        page = web.post(
            f"{base}/pacs/", {"name": "x", "base_url": url, "auth": "none"}, follow=True
        )
        assert "is not an allowed PACS address" in page.content.decode(), url
    assert not PacsConnection.objects.exists()
    for url in ("http://pacs.hospital.example:8042/dicom-web", "http://10.20.3.4/dicom-web"):
        web.post(f"{base}/pacs/", {"name": url, "base_url": url, "auth": "none"})
    assert PacsConnection.objects.count() == 2
    # A connection saved before the allowlist changed is refused before any request.
    stale = PacsConnection.objects.create(
        project=project, name="stale", base_url="http://127.0.0.1:8000/dicom-web"
    )
    page = web.get(f"{base}/pacs/{stale.pk}/", {"PatientID": "x", "go": 1}).content.decode()
    assert "not an allowed PACS destination" in page


def test_an_upstream_error_body_is_logged_not_shown(project, manager, settings, caplog):
    """The reply of whatever answered never reaches the page (it may be an internal
    service's data); the log keeps it for the operator."""
    import http.server
    import threading

    class Teapot(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"INTERNAL-SECRET-42"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Teapot)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        settings.REFSET_PACS_ALLOWED_HOSTS = [f"127.0.0.1:{port}"]
        connection = PacsConnection.objects.create(
            project=project, name="odd", base_url=f"http://127.0.0.1:{port}/dicom-web"
        )
        web = Client()
        web.force_login(manager)
        with caplog.at_level("WARNING", logger="annotation_server.imaging.pacs"):
            page = web.get(
                f"/projects/{project.slug}/pacs/{connection.pk}/", {"PatientID": "x", "go": 1}
            ).content.decode()
    finally:
        server.shutdown()
    assert "HTTP 500" in page and "INTERNAL-SECRET-42" not in page
    assert "INTERNAL-SECRET-42" in caplog.text
