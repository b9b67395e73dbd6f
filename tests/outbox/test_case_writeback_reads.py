"""Sending a case goes through the outbox.queue_case job, and what it sends
follows the protocol's `writeback_reads`: the reference standard only, or with
each reader's submitted read (SEG + TID 1500 SR, the reader under the export's
pseudonymous observer code), or with the model's proposals too (SEG with
AUTOMATIC segments, SR observed by a device). Through a signed-in session (the
page and REST), delivered to a real Orthanc and confirmed there; every stored
object passes dciodvfy."""

from __future__ import annotations

import io

import pydicom
import pytest

from annotation_server.datasets.snapshot import pseudonym
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.outbox.models import OutboxItem
from annotation_server.reading.models import AssistModelVersion, Proposal
from tests import factories
from tests.adjudication.conftest import ellipse
from tests.outbox.conftest import destination, run_jobs
from tests.outbox.test_writeback_orthanc import _check_in_orthanc, _stored

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEG = "1.2.840.10008.5.1.4.1.1.66.4"
SR = "1.2.840.10008.5.1.4.1.1.88.34"


@pytest.fixture
def client_for(client_for):
    def make(user):
        client = client_for(user)
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return client

    return make


def _url(project) -> str:
    return f"/projects/{project.slug}/outbox/"


def _carries(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item.carries] = out.get(item.carries, 0) + 1
    return out


def _the_queue_job() -> Job:
    (job,) = Job.objects.filter(kind="outbox.queue_case")
    return job


def test_a_protocol_that_writes_back_reads_sends_each_readers_seg_and_sr(
    project, settled_case, orthanc, manager, reader_a, reader_b, reader_c, client_for, tmp_path
):
    protocol = project.protocol
    protocol.writeback_reads = "reads"
    protocol.save()
    dest = destination(project, orthanc, "stow", "research")
    client = client_for(manager)
    assert "the reference standard and each reader" in client.get(_url(project)).content.decode()

    sent = client.post(
        _url(project),
        {"form": "send-case", "case": settled_case.code, "destination": dest.pk},
        follow=True,
    )
    # the page answered before anything was built: a queued job, no item yet
    assert sent.status_code == 200
    job = _the_queue_job()
    assert job.state == Job.State.QUEUED and job.created_by == manager
    assert job.params == {"case": settled_case.pk, "destination": dest.pk}
    assert not OutboxItem.objects.exists()
    page = sent.content.decode()
    assert f'data-job="{job.pk}" data-state="queued"' in page
    assert f"(job {job.pk})" in page

    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    items = list(OutboxItem.objects.filter(destination=dest).order_by("pk"))
    # the reference's SEG and SR, and each of the three submitted reads' SEG and SR
    assert _carries(items) == {"reference_seg": 1, "reference_sr": 1, "read_seg": 3, "read_sr": 3}
    assert job.result["items"] == 8 and job.result["carries"]["read_sr"] == 3
    page = client.get(_url(project)).content.decode()
    assert f'data-job="{job.pk}" data-state="succeeded"' in page
    assert "8 objects queued" in page

    for item in run_jobs(items):
        assert item.status == "delivered", (item.carries, item.last_error)
    stored = _check_in_orthanc(orthanc, items, tmp_path)  # one copy each, dciodvfy-clean
    by_uid = {str(ds.SOPInstanceUID): ds for ds in stored}
    readers = {pseudonym(r) for r in (reader_a, reader_b, reader_c)}
    observers = set()
    for item in items:
        ds = by_uid[item.sop_instance_uid]
        assert ds.StudyInstanceUID == settled_case.series.study.study_uid
        raw = _stored(orthanc, item.sop_instance_uid)[0]
        for reader in (reader_a, reader_b, reader_c):
            assert reader.username.encode() not in raw  # pseudonymous only
        if item.carries == "read_sr":
            (person,) = [
                c for c in ds.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "121008"
            ]
            observers.add(str(person.PersonName).rstrip("^"))
    assert observers == readers
    # read objects have UIDs of their own, not the reference's
    assert len({i.sop_instance_uid for i in items}) == 8


def test_a_protocol_that_does_not_sends_only_the_reference(
    project, settled_case, orthanc, manager, client_for, tmp_path
):
    assert project.protocol.writeback_reads == "reference"
    dest = destination(project, orthanc, "stow", "research")
    api = client_for(manager)
    sent = api.post(
        f"/api/v1/writeback-destinations/{dest.pk}/send-case/",
        {"case": settled_case.code},
        format="json",
    )
    assert sent.status_code == 202, sent.json()
    body = sent.json()
    assert body["kind"] == "outbox.queue_case" and body["state"] == "queued"
    assert not OutboxItem.objects.exists()
    assert jobs.execute(body["id"]) == Job.State.SUCCEEDED
    followed = api.get(f"/api/v1/jobs/{body['id']}/").json()
    assert followed["state"] == "succeeded" and followed["progress"] == 100
    assert followed["result"]["items"] == 2
    items = list(OutboxItem.objects.filter(destination=dest))
    assert _carries(items) == {"reference_seg": 1, "reference_sr": 1}
    for item in run_jobs(items):
        assert item.status == "delivered", item.last_error
    _check_in_orthanc(orthanc, items, tmp_path)
    # Orthanc holds the CT and the two reference objects, nothing of the reads
    assert len(orthanc.get_json("/instances")) == 6 + 2
    # a job run again (a worker died after queueing) adds nothing
    again = jobs.enqueue(
        "outbox.queue_case",
        params={"case": settled_case.pk, "destination": dest.pk},
        project=project,
        user=manager,
    )
    assert jobs.execute(again.pk) == Job.State.SUCCEEDED
    assert OutboxItem.objects.count() == 2


def test_a_case_with_nothing_to_send_fails_its_job_and_the_page_says_why(
    project, settled_case, orthanc, manager, client_for
):
    from annotation_server.adjudication.models import ReferenceFinding

    ReferenceFinding.objects.filter(case=settled_case).update(status="rejected")
    dest = destination(project, orthanc, "stow", "research")
    client = client_for(manager)
    client.post(
        _url(project), {"form": "send-case", "case": settled_case.code, "destination": dest.pk}
    )
    job = _the_queue_job()
    assert jobs.execute(job.pk) == Job.State.FAILED
    page = client.get(_url(project)).content.decode()
    assert f'data-job="{job.pk}" data-state="failed"' in page
    assert f"Case {settled_case.code} has no reference finding to send" in page
    assert "Traceback" not in page
    assert not OutboxItem.objects.exists()


def test_model_proposals_go_as_automatic_seg_and_a_device_observed_sr(
    project, settled_case, orthanc, manager, tmp_path
):
    protocol = project.protocol
    protocol.writeback_reads = "model"
    protocol.save()
    model = AssistModelVersion.objects.create(
        name="nodule-net",
        version="2.1",
        task="detection",
        card={"name": "nodule-net"},
        weights_sha256="a" * 64,
        source=AssistModelVersion.Source.PLUGIN,
    )
    geometry = ellipse(41, 44, [2, 3], radius=8.0)
    Proposal.objects.create(
        case=settled_case,
        series=settled_case.series,
        model_version=model,
        finding_type="nodule",
        geometry=geometry,
        centre_x_mm=geometry["centre_mm"][0],
        centre_y_mm=geometry["centre_mm"][1],
        centre_z_mm=geometry["centre_mm"][2],
        attributes=factories.complete_nodule_attributes(),
        score=0.9,
        threshold=0.3,
    )
    dest = destination(project, orthanc, "dimse", "research")
    from annotation_server.outbox import services

    job = services.send_case(settled_case, dest, manager)
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    items = list(OutboxItem.objects.filter(destination=dest).order_by("pk"))
    assert _carries(items) == {
        "reference_seg": 1,
        "reference_sr": 1,
        "read_seg": 3,
        "read_sr": 3,
        "model_seg": 1,
        "model_sr": 1,
    }
    for item in run_jobs(items):
        assert item.status == "delivered", (item.carries, item.last_error)
    _check_in_orthanc(orthanc, items, tmp_path)
    (seg_item,) = [i for i in items if i.carries == "model_seg"]
    (sr_item,) = [i for i in items if i.carries == "model_sr"]
    seg = pydicom.dcmread(io.BytesIO(_stored(orthanc, seg_item.sop_instance_uid)[0]))
    assert {s.SegmentAlgorithmType for s in seg.SegmentSequence} == {"AUTOMATIC"}
    assert seg.SegmentSequence[0].SegmentAlgorithmName == "nodule-net"
    sr = pydicom.dcmread(io.BytesIO(_stored(orthanc, sr_item.sop_instance_uid)[0]))
    observer_type = [
        c for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "121005"
    ]
    assert observer_type[0].ConceptCodeSequence[0].CodeValue == "121007"  # device
    device_name = [
        c for c in sr.ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == "121013"
    ]
    assert device_name[0].TextValue == "nodule-net"


def test_readers_reads_go_to_the_hospital_pacs_on_the_original_study(
    project, settled_case, orthanc, key_keeper, ct, tmp_path
):
    """With reads written back to a hospital PACS, each read's SEG and SR is
    re-identified like the reference's: filed under the original study, its
    references naming the original images, the patient's own ID."""
    from annotation_server.outbox import services

    protocol = project.protocol
    protocol.writeback_reads = "reads"
    protocol.save()
    dest = destination(project, orthanc, "dimse", "hospital")
    items = services.queue_case_reference(settled_case, dest, key_keeper)
    assert _carries(items) == {"reference_seg": 1, "reference_sr": 1, "read_seg": 3, "read_sr": 3}
    for item in run_jobs(items):
        assert item.status == "delivered", (item.carries, item.last_error)
    originals = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in (tmp_path / "ct").glob("*.dcm")
    }
    patient = ct["phi"]["attributes"]["PatientID"]
    for item, ds in zip(items, _check_in_orthanc(orthanc, items, tmp_path), strict=True):
        assert ds.StudyInstanceUID == ct["study_instance_uid"], item.carries
        assert ds.PatientID == patient and ds.PatientIdentityRemoved == "NO"
        if item.carries == "read_seg":
            refs = ds.ReferencedSeriesSequence[0]
            assert refs.SeriesInstanceUID == ct["series_instance_uid"]
            named = {r.ReferencedSOPInstanceUID for r in refs.ReferencedInstanceSequence}
            assert named and named <= originals
    assert len(orthanc.get_json("/studies")) == 1  # all beside the CT, on its study
