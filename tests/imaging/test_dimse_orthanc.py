"""Query/retrieve over DIMSE against a real Orthanc: C-FIND studies and series,
C-MOVE to RefSet's own listener (Orthanc knows it as a modality), C-GET, and
`manage.py pull_pacs --dimse`. Orthanc runs in its private network namespace
(tests/orthanc.py); the listener binds the host end of its veth pair, which is
the only address Orthanc can reach.
"""

from __future__ import annotations

import io
import socket

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command

import fixtures
from annotation_server.imaging.dimse.listener import Listener, ListenerConfig
from annotation_server.imaging.dimse.scu import DimseClient, pull
from annotation_server.imaging.models import Instance, PacsConnection
from annotation_server.imaging.pacs import PacsError
from annotation_server.jobs.models import Job
from tests.orthanc import run_orthanc

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """Orthanc holding a 3-slice CT, knowing RefSet's listener as REFSET."""
    port = _free_port()
    root = tmp_path_factory.mktemp("dimse-orthanc")
    truth = fixtures.generate_ct(root / "ct", slices=3, seed=51, matrix=64)
    with run_orthanc(root / "orthanc", modalities={"REFSET": (None, port)}) as orthanc:
        for path in sorted((root / "ct").glob("*.dcm")):
            orthanc.upload(path)
        yield orthanc, port, truth


@pytest.fixture
def listener(pacs):
    orthanc, port, _ = pacs
    server = Listener(ListenerConfig(ae_title="REFSET", port=port, bind=orthanc.peer_host))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def connection(project, pacs, settings):
    orthanc, _, _ = pacs
    settings.REFSET_PACS_ALLOWED_HOSTS = [orthanc.host]
    return PacsConnection.objects.create(
        project=project,
        name="Orthanc DIMSE",
        transport=PacsConnection.Transport.DIMSE,
        ae_title=orthanc.dicom_aet,
        host=orthanc.host,
        port=orthanc.dicom_port,
    )


def _assert_deidentified(project, truth) -> None:
    phi = truth["phi"]["attributes"]
    instances = list(Instance.objects.filter(series__study__project=project))
    assert len(instances) == 3
    for instance in instances:
        with default_storage.open(instance.file) as fh:
            stored = fh.read()
        assert phi["PatientID"].encode() not in stored
        ds = pydicom.dcmread(io.BytesIO(stored), stop_before_pixels=True)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.StudyInstanceUID != truth["study_instance_uid"]


def test_c_find_studies_and_series(connection, pacs):
    _, _, truth = pacs
    client = DimseClient.from_connection(connection)
    assert client.echo()
    rows = client.find_studies(PatientID=truth["phi"]["attributes"]["PatientID"])
    assert [r["StudyInstanceUID"] for r in rows] == [truth["study_instance_uid"]]
    assert rows[0]["ModalitiesInStudy"] == ["CT"]
    assert rows[0]["NumberOfStudyRelatedInstances"] == 3
    assert client.find_studies(PatientID="NO-SUCH-PATIENT") == []
    series = client.find_series(truth["study_instance_uid"])
    assert [s["SeriesInstanceUID"] for s in series] == [truth["series_instance_uid"]]
    assert series[0]["Modality"] == "CT" and series[0]["NumberOfSeriesRelatedInstances"] == 3


def test_c_move_to_the_listener_then_c_get_gives_duplicates(project, connection, listener, pacs):
    _, _, truth = pacs
    report = pull(project, connection, [truth["study_instance_uid"]])
    s = report.summary()
    assert (s["imported"], s["rejected"], s["series"]) == (3, 0, 1), report.files
    _assert_deidentified(project, truth)
    # the listener took Orthanc's association as this connection's project's
    job = Job.objects.get(project=project, params__source="dimse")
    assert job.params["calling_ae"] == "REFSETTEST" and "PACS connection" in job.params["via"]

    again = pull(project, connection, [truth["study_instance_uid"]], retrieve="get")
    assert (again.summary()["duplicates"], again.summary()["rejected"]) == (3, 0), again.files
    assert Instance.objects.filter(series__study__project=project).count() == 3


def test_unknown_study_and_unlisted_host(project, connection, listener, settings):
    report = pull(project, connection, ["1.2.3.4.5.6.7.8.9"], retrieve="get")
    assert report.summary()["rejected"] == 1 and not report.ok
    settings.REFSET_PACS_ALLOWED_HOSTS = []
    with pytest.raises(PacsError, match="REFSET_PACS_ALLOWED_HOSTS"):
        DimseClient.from_connection(connection)


def test_pull_pacs_command_over_dimse(project, pacs, listener, capsys):
    orthanc, _, truth = pacs
    base = [
        "--project", project.slug, "--dimse", "--ae-title", orthanc.dicom_aet,
        "--host", orthanc.host, "--port", str(orthanc.dicom_port),
    ]  # fmt: skip
    pid = truth["phi"]["attributes"]["PatientID"]
    call_command("pull_pacs", *base, "--query", f"PatientID={pid}")
    listing = capsys.readouterr().out
    assert "1 studies" in listing and truth["study_instance_uid"] in listing
    call_command(
        "pull_pacs", *base, "--retrieve", "get", "--study-uid", truth["study_instance_uid"],
        "--quiet",
    )  # fmt: skip
    out = capsys.readouterr().out
    assert "3 instances imported into 1 new series" in out and "0 rejected" in out
    _assert_deidentified(project, truth)


def test_manager_queries_and_pulls_over_dimse_from_the_pages(project, manager, connection, pacs):
    from django.test import Client

    from annotation_server.jobs import services as jobs
    from tests import factories

    _, _, truth = pacs
    connection.retrieve = PacsConnection.Retrieve.GET
    connection.save()
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert web.login(username=manager.username, password=factories.PASSWORD)
    base = f"/projects/{project.slug}/pacs/{connection.pk}/"
    pid = truth["phi"]["attributes"]["PatientID"]
    found = web.get(base, {"PatientID": pid, "go": 1})
    html = found.content.decode()
    assert found.status_code == 200 and truth["study_instance_uid"] in html
    assert connection.address in html
    web.post(f"{base}pull/", {"study": [truth["study_instance_uid"]]})
    job = Job.objects.get(kind="imaging.pull_pacs")
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.result["summary"]["imported"] == 3, job.result
    _assert_deidentified(project, truth)
