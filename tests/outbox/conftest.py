"""Write-back fixtures: a real CT (fixtures.generate_ct) uploaded as it is to an
Orthanc playing the hospital PACS and imported (de-identified) into the project,
read by three readers and settled, so the case has a reference standard with an
area; PACS connections to that Orthanc over DICOMweb and DIMSE."""

from __future__ import annotations

import subprocess

import pytest
from django.contrib.auth.models import Permission

import fixtures
from annotation_server.adjudication import services as adjudication
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import PacsConnection
from annotation_server.outbox.models import Destination
from annotation_server.projects.models import Case
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse, submit_all
from tests.orthanc import run_orthanc


@pytest.fixture
def key_keeper(manager):
    """The manager, holding the key-store permission (original identifiers)."""
    manager.user_permissions.add(
        Permission.objects.get(codename="view_identity_key", content_type__app_label="imaging")
    )
    return type(manager).objects.get(pk=manager.pk)  # drop the permission cache


@pytest.fixture
def ct(tmp_path):
    return fixtures.generate_ct(tmp_path / "ct", slices=6, seed=61, matrix=96)


@pytest.fixture
def settled_case(project, reader_a, reader_b, reader_c, ct, tmp_path):
    protocol = project.protocol
    protocol.auto_accept_min_readers = 3
    protocol.drop_below_readers = 1
    protocol.match_rule = "centre_distance"
    protocol.match_threshold = 5.0
    protocol.save()
    report = ingest(project, from_paths([tmp_path / "ct"], Limits()), source="test")
    assert report.summary()["imported"] == 6, [(f.name, f.reason) for f in report.files]
    case = Case.objects.get(project=project)
    Case.objects.filter(pk=case.pk).update(state=Case.State.READING)
    tasks = {
        f"r{i}": factories.TaskFactory(case=case, reader=reader)
        for i, reader in enumerate((reader_a, reader_b, reader_c))
    }
    for i, task in enumerate(tasks.values()):
        add_finding(task, ellipse(40 + i, 44, [2, 3], radius=8.0))
    submit_all(tasks, {n: {"nodules_present": True, "image_quality": 3} for n in tasks})
    adjudication.settle_case(case.pk)
    case.refresh_from_db()
    assert case.state == Case.State.ADJUDICATED, case.state
    return case


@pytest.fixture
def orthanc(tmp_path, ct, settings):
    """An Orthanc holding the original CT; it knows RefSet's AE title (C-FIND)."""
    with run_orthanc(tmp_path / "orthanc", modalities={"REFSET": (None, 11112)}) as handle:
        for path in sorted((tmp_path / "ct").glob("*.dcm")):
            handle.upload(path)
        settings.REFSET_PACS_ALLOWED_HOSTS = [handle.host]
        settings.REFSET_DICOM_AE_TITLE = "REFSET"
        settings.REFSET_OUTBOX_TIMEOUT_S = 3
        settings.REFSET_OUTBOX_BACKOFF_S = 1
        yield handle


def connection(project, orthanc, transport: str, name: str = "") -> PacsConnection:
    if transport == "dimse":
        return PacsConnection.objects.create(
            project=project,
            name=name or "Orthanc DIMSE",
            transport="dimse",
            ae_title=orthanc.dicom_aet,
            host=orthanc.host,
            port=orthanc.dicom_port,
        )
    return PacsConnection.objects.create(
        project=project, name=name or "Orthanc DICOMweb", base_url=orthanc.dicomweb_url
    )


def destination(project, orthanc, transport: str, kind: str, *, inside: bool = True):
    return Destination.objects.create(
        project=project,
        name=f"{kind} {transport}",
        kind=kind,
        connection=connection(project, orthanc, transport, f"Orthanc {transport} {kind}"),
        inside_hospital=inside and kind == "hospital",
    )


def dciodvfy_errors(data: bytes, tmp_path) -> list[str]:
    path = tmp_path / "check.dcm"
    path.write_bytes(data)
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("Error")]


def run_jobs(items) -> list:
    """Run each item's delivery job here (the harness's broker has no worker), as a
    worker would; returns the rows as they are then."""
    from annotation_server.jobs import services as jobs
    from annotation_server.jobs.models import Job
    from annotation_server.outbox.models import OutboxItem

    rows = list(OutboxItem.objects.filter(pk__in=[i.pk for i in items]).order_by("pk"))
    for row in rows:
        assert jobs.execute(row.job_id) == Job.State.SUCCEEDED
    return list(OutboxItem.objects.filter(pk__in=[i.pk for i in items]).order_by("pk"))
