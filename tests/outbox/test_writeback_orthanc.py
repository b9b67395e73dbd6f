"""Write-back to a real Orthanc (tests/orthanc.py) by STOW-RS and by C-STORE,
confirmed by querying Orthanc, for a research archive (de-identified objects as
they are) and for the hospital PACS the study came from (re-identified: the SEG
and SR attach to the ORIGINAL study, series and instances); Orthanc stopped in
the middle of a delivery (the outbox retries, then delivers, nothing twice); every
object Orthanc stores passes dciodvfy."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading

import pydicom
import pytest

from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.models import Instance
from annotation_server.jobs.models import Job
from annotation_server.outbox import services
from annotation_server.outbox.models import OutboxItem
from tests.orthanc import ORTHANC
from tests.orthanc import _stop as stop_orthanc_process
from tests.outbox.conftest import dciodvfy_errors, destination, run_jobs

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SEG = "1.2.840.10008.5.1.4.1.1.66.4"
SR = "1.2.840.10008.5.1.4.1.1.88.34"


def _stored(orthanc, sop_uid: str) -> list[bytes]:
    """The Part 10 files Orthanc holds under this SOP Instance UID."""
    status, body = orthanc.request("POST", "/tools/lookup", sop_uid.encode())
    assert status == 200, body
    ids = [r["ID"] for r in json.loads(body) if r["Type"] == "Instance"]
    out = []
    for oid in ids:
        status, data = orthanc.request("GET", f"/instances/{oid}/file")
        assert status == 200
        out.append(data)
    return out


def _check_in_orthanc(orthanc, items, tmp_path) -> list[pydicom.Dataset]:
    datasets = []
    for item in items:
        files = _stored(orthanc, item.sop_instance_uid)
        assert len(files) == 1, (item.sop_instance_uid, len(files))
        assert dciodvfy_errors(files[0], tmp_path) == [], item.carries
        datasets.append(pydicom.dcmread(io.BytesIO(files[0])))
    return datasets


@pytest.mark.parametrize("transport", ["stow", "dimse"])
def test_research_archive_gets_the_deidentified_seg_and_sr(
    transport, project, settled_case, orthanc, manager, ct, tmp_path
):
    dest = destination(project, orthanc, transport, "research")
    items = services.queue_case_reference(settled_case, dest, manager)
    assert sorted(i.sop_class_uid for i in items) == [SEG, SR]
    for item in run_jobs(items):
        assert item.status == "delivered", (item.status, item.last_error)
        assert item.attempts == 1 and item.delivered_at
        assert item.transport == ("cstore" if transport == "dimse" else "stow")
    stored = _check_in_orthanc(orthanc, items, tmp_path)
    study = settled_case.series.study.study_uid
    for ds in stored:
        assert ds.StudyInstanceUID == study != ct["study_instance_uid"]
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.PatientID == settled_case.series.study.patient_pseudo_id
    # queued again: the same revision has the same UIDs, and nothing is added
    again = services.queue_case_reference(settled_case, dest, manager)
    assert {i.pk for i in again} == {i.pk for i in items}
    assert OutboxItem.objects.count() == 2


@pytest.mark.parametrize("transport", ["stow", "dimse"])
def test_hospital_pacs_gets_the_seg_on_the_original_study(
    transport, project, settled_case, orthanc, key_keeper, ct, tmp_path
):
    dest = destination(project, orthanc, transport, "hospital")
    items = services.queue_case_reference(settled_case, dest, key_keeper)
    for item in run_jobs(items):
        assert item.status == "delivered", (item.status, item.last_error)
    stored = {ds.SOPClassUID: ds for ds in _check_in_orthanc(orthanc, items, tmp_path)}
    seg, sr = stored[SEG], stored[SR]
    original_sops = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in (tmp_path / "ct").glob("*.dcm")
    }
    patient = ct["phi"]["attributes"]["PatientID"]
    first = pydicom.dcmread(next((tmp_path / "ct").glob("*.dcm")), stop_before_pixels=True)
    from annotation_server.imaging.models import Study

    shifted = Study.objects.values_list("study_date", flat=True).first()
    assert shifted and shifted.strftime("%Y%m%d") != first.StudyDate  # the import shifted it
    for ds in (seg, sr):
        assert ds.StudyInstanceUID == ct["study_instance_uid"]
        assert ds.PatientID == patient and ds.PatientIdentityRemoved == "NO"
        # the import's date shift is taken back: the study's own date
        assert ds.StudyDate == first.StudyDate, (ds.StudyDate, first.StudyDate, shifted)
    refs = seg.ReferencedSeriesSequence[0]
    assert refs.SeriesInstanceUID == ct["series_instance_uid"]
    assert {r.ReferencedSOPInstanceUID for r in refs.ReferencedInstanceSequence} <= original_sops
    deid_sops = set(Instance.objects.values_list("sop_instance_uid", flat=True))
    assert not deid_sops & {r.ReferencedSOPInstanceUID for r in refs.ReferencedInstanceSequence}
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == ct["study_instance_uid"]
    # Orthanc files them under the original study, next to the CT
    studies = orthanc.get_json("/studies")
    assert len(studies) == 1
    modalities = {
        orthanc.get_json(f"/series/{s}")["MainDicomTags"]["Modality"]
        for s in orthanc.get_json(f"/studies/{studies[0]}")["Series"]
    }
    assert modalities == {"CT", "SEG", "SR"}
    # every original identifier read was audited, with the write-back as reason
    reveals = AuditEvent.objects.filter(action="identity.revealed")
    assert reveals.count() >= 3
    assert all("write-back" in e.data["reason"] for e in reveals)


def test_hospital_destination_needs_the_mark_and_the_key_store_permission(
    project, settled_case, orthanc, manager, key_keeper
):
    unmarked = destination(project, orthanc, "stow", "hospital", inside=False)
    with pytest.raises(services.OutboxRefused, match="inside the hospital"):
        services.queue_case_reference(settled_case, unmarked, key_keeper)
    services.mark_inside_hospital(unmarked, key_keeper, True)
    manager.user_permissions.clear()
    plain = type(manager).objects.get(pk=manager.pk)
    with pytest.raises(services.OutboxRefused, match="key-store permission"):
        services.queue_case_reference(settled_case, unmarked, plain)
    assert not OutboxItem.objects.exists()
    assert orthanc.get_json("/statistics")["CountInstances"] == 6


def _stop_orthanc(orthanc) -> None:
    os.killpg(os.getpgid(orthanc.process.pid), signal.SIGTERM)
    orthanc.process.wait(20)


def _start_orthanc(orthanc) -> subprocess.Popen:
    """Orthanc again, on the same configuration, storage, ports and namespace."""
    cmd = [ORTHANC, str(orthanc.log_path.parent / "orthanc.json")]
    if orthanc.netns:
        cmd = ["ip", "netns", "exec", orthanc.netns, *cmd]
    with open(orthanc.log_path, "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def test_orthanc_stopped_mid_delivery_retries_then_delivers_once(
    project, settled_case, orthanc, manager, settings, tmp_path
):
    settings.REFSET_OUTBOX_MAX_ATTEMPTS = 8
    dest = destination(project, orthanc, "stow", "research")
    items = services.queue_case_reference(settled_case, dest, manager)
    first, second = run_jobs(items[:1])[0], items[1]
    assert first.status == "delivered"
    _stop_orthanc(orthanc)  # between the case's two objects
    restarted: list[subprocess.Popen] = []
    timer = threading.Timer(3.0, lambda: restarted.append(_start_orthanc(orthanc)))
    timer.start()
    try:
        [second] = run_jobs([second])
        timer.join()
        assert second.status == "delivered", (second.status, second.last_error)
        assert second.attempts >= 2
        log = Job.objects.get(pk=second.job_id).log
        assert "attempt 1 of item" in log and "failed" in log
        assert orthanc.get_json("/statistics")["CountInstances"] == 6 + 2  # nothing twice
        _check_in_orthanc(orthanc, [first, second], tmp_path)
    finally:
        timer.cancel()
        timer.join()
        for proc in restarted:  # the fixture stops only the Orthanc it started
            stop_orthanc_process(proc)


def test_an_unreachable_destination_fails_after_the_attempts_then_a_retry_delivers(
    project, settled_case, orthanc, manager, settings
):
    settings.REFSET_OUTBOX_MAX_ATTEMPTS = 2
    dest = destination(project, orthanc, "dimse", "research")
    real_port = dest.connection.port
    dest.connection.port = 1  # nothing listens there
    dest.connection.save()
    items = services.queue_case_reference(settled_case, dest, manager)
    rows = run_jobs(items)
    assert [(r.status, r.attempts) for r in rows] == [("failed", 2), ("failed", 2)]
    assert all("cannot reach" in r.last_error for r in rows)
    dest.connection.port = real_port
    dest.connection.save()
    services.cancel(rows[1], manager)
    rows = run_jobs([services.retry(row, manager) for row in rows])
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 1), ("delivered", 1)]
    with pytest.raises(services.OutboxConflict):
        services.cancel(rows[0], manager)
