"""PACS exchange end to end against a real Orthanc (DICOMweb plugin): QIDO-RS search,
WADO-RS retrieve, de-identified import through pull() and `manage.py pull_pacs`,
duplicates on a second pull, clear errors for an unreachable PACS.

Orthanc runs in a private network namespace (see tests/orthanc.py). If it cannot
start, these tests fail; they never skip.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

import fixtures
from annotation_server.imaging.models import Instance, PacsConnection, Study
from annotation_server.imaging.pacs import (
    Oversize,
    PacsClient,
    PacsError,
    iter_multipart,
    parse_content_type,
    pull,
)
from tests.orthanc import run_orthanc

pytestmark = [pytest.mark.services, pytest.mark.django_db]


class Delivery:
    """What was uploaded to Orthanc: per study, the truth and the original UIDs."""

    def __init__(self, orthanc, root: Path):
        self.orthanc = orthanc
        self.ct = fixtures.generate_ct(root / "ct", slices=4, seed=21, matrix=64)
        self.xr = fixtures.generate_xr(root / "xr", seed=22, size=256)
        self.sop_uids: set[str] = set()
        for folder in (root / "ct", root / "xr"):
            (folder / "truth.json").unlink()
            for path in sorted(folder.glob("*.dcm")):
                orthanc.upload(path)
                self.sop_uids.add(
                    str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
                )

    def patient_id(self, truth: dict) -> str:
        return truth["phi"]["attributes"]["PatientID"]


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as handle:
        yield handle


@pytest.fixture(scope="module")
def delivery(orthanc, tmp_path_factory) -> Delivery:
    return Delivery(orthanc, tmp_path_factory.mktemp("delivery"))


@pytest.fixture
def client(orthanc) -> PacsClient:
    return PacsClient(orthanc.dicomweb_url)


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/dicom-web"


def _assert_deidentified(project, delivery: Delivery) -> None:
    instances = list(Instance.objects.filter(series__study__project=project))
    assert len(instances) == 5
    secrets_ = [
        delivery.patient_id(delivery.ct).encode(),
        delivery.patient_id(delivery.xr).encode(),
        delivery.ct["phi"]["attributes"]["PatientName"].split("=")[0].encode(),
    ]
    for instance in instances:
        assert instance.sop_instance_uid not in delivery.sop_uids
        with default_storage.open(instance.file) as fh:
            stored = fh.read()
        for secret in secrets_:
            assert secret not in stored
        ds = pydicom.dcmread(io.BytesIO(stored), stop_before_pixels=True)
        assert ds.PatientIdentityRemoved == "YES"
        assert str(ds.SOPInstanceUID) not in delivery.sop_uids
    study_uids = set(Study.objects.filter(project=project).values_list("study_uid", flat=True))
    assert len(study_uids) == 2
    assert not study_uids & {delivery.ct["study_instance_uid"], delivery.xr["study_instance_uid"]}


def test_orthanc_runs_isolated_without_compression(orthanc):
    assert orthanc.isolated, "ip netns is usable here as root: Orthanc must run in a namespace"
    assert orthanc.host.startswith("10.203.")
    assert orthanc.config["HttpCompressionEnabled"] is False
    assert orthanc.get_json("/system")["Name"] == "RefSetTestPACS"


def test_qido_finds_the_studies_by_patient_id(client, delivery):
    rows = client.search_studies(PatientID=delivery.patient_id(delivery.ct))
    assert [r["StudyInstanceUID"] for r in rows] == [delivery.ct["study_instance_uid"]]
    row = rows[0]
    assert row["PatientID"] == delivery.patient_id(delivery.ct)
    assert row["ModalitiesInStudy"] == ["CT"]
    assert row["NumberOfStudyRelatedInstances"] == 4
    assert len(row["StudyDate"]) == 8
    assert len(client.search_studies()) == 2
    assert client.search_studies(PatientID="NO-SUCH-PATIENT") == []
    series = client.search_series(delivery.ct["study_instance_uid"])
    assert [s["SeriesInstanceUID"] for s in series] == [delivery.ct["series_instance_uid"]]
    assert series[0]["Modality"] == "CT" and series[0]["NumberOfSeriesRelatedInstances"] == 4


def test_wado_retrieve_gives_part10_instances(client, delivery):
    parts = list(client.retrieve_study(delivery.ct["study_instance_uid"]))
    assert len(parts) == 4
    uids = set()
    for _, data in parts:
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.pixel_array.shape == (64, 64)
        uids.add(str(ds.SOPInstanceUID))
    assert uids <= delivery.sop_uids


def test_pull_imports_deidentified_and_a_second_pull_is_duplicates(project, client, delivery):
    uids = [delivery.ct["study_instance_uid"], delivery.xr["study_instance_uid"]]
    seen = []
    report = pull(project, client, uids, progress=lambda done, total: seen.append((done, total)))
    s = report.summary()
    assert (s["imported"], s["rejected"], s["studies"], s["series"]) == (5, 0, 2, 2), s
    assert s["patients"] == 2 and len(s["cases"]) == 2
    assert seen[-1] == (5, 5)
    assert all(f.name.startswith(("study-1/", "study-2/")) for f in report.files)
    _assert_deidentified(project, delivery)
    again = pull(project, client, uids).summary()
    assert (again["imported"], again["duplicates"], again["rejected"]) == (0, 5, 0)
    assert Instance.objects.filter(series__study__project=project).count() == 5


def test_pull_through_a_stored_connection(project, orthanc, delivery, settings):
    settings.REFSET_PACS_ALLOWED_HOSTS = [orthanc.host]
    connection = PacsConnection.objects.create(
        project=project, name="Orthanc", base_url=orthanc.dicomweb_url
    )
    report = pull(project, connection, [delivery.xr["study_instance_uid"]])
    assert report.summary()["imported"] == 1


def test_unknown_study_is_a_rejected_entry(project, client):
    report = pull(project, client, ["1.2.3.4.5.6.7.8.9"])
    assert report.summary()["rejected"] == 1 and not report.ok
    assert "no study" in report.files[0].reason


def test_pull_pacs_command_lists_then_imports(project, orthanc, delivery, capsys):
    pid = delivery.patient_id(delivery.ct)
    call_command(
        "pull_pacs", "--project", project.slug, "--url", orthanc.dicomweb_url, "--query",
        f"PatientID={pid}",
    )  # fmt: skip
    listing = capsys.readouterr().out
    assert "1 studies" in listing and delivery.ct["study_instance_uid"] in listing

    args = ["--project", project.slug, "--url", orthanc.dicomweb_url, "--quiet"]
    for uid in (delivery.ct["study_instance_uid"], delivery.xr["study_instance_uid"]):
        args += ["--study-uid", uid]
    call_command("pull_pacs", *args)
    out = capsys.readouterr().out
    assert "5 instances imported into 2 new series" in out and "0 rejected" in out
    _assert_deidentified(project, delivery)
    call_command("pull_pacs", *args)
    assert "5 duplicates skipped" in capsys.readouterr().out


def test_pull_pacs_command_exit_codes(project, orthanc):
    with pytest.raises(SystemExit) as rejected:
        call_command(
            "pull_pacs", "--project", project.slug, "--url", orthanc.dicomweb_url,
            "--study-uid", "1.2.3.4.5.6.7.8.9", "--quiet",
        )  # fmt: skip
    assert rejected.value.code == 1
    with pytest.raises(CommandError) as usage:
        call_command("pull_pacs", "--project", project.slug, "--url", orthanc.dicomweb_url)
    assert usage.value.returncode == 2
    with pytest.raises(CommandError) as missing:
        call_command("pull_pacs", "--project", "nope", "--url", orthanc.dicomweb_url)
    assert missing.value.returncode == 2 and "nope" in str(missing.value)


def test_unreachable_pacs_gives_an_error_naming_the_url(project):
    url = _dead_url()
    with pytest.raises(PacsError, match="cannot reach the PACS at " + url):
        PacsClient(url).search_studies(PatientID="X")
    with pytest.raises(PacsError, match=url):
        pull(project, PacsClient(url), ["1.2.3"])
    with pytest.raises(CommandError) as exc:
        call_command("pull_pacs", "--project", project.slug, "--url", url, "--study-uid", "1.2.3")
    assert exc.value.returncode == 2 and url in str(exc.value)


def test_multipart_parser_accepts_orthancs_quoted_type_and_small_chunks():
    header = (
        'multipart/related; type="application/dicom; transfer-syntax=1.2.840.10008.1.2.1"; '
        "boundary=b0undary-123"
    )
    media, params = parse_content_type(header)
    assert media == "multipart/related"
    assert params == {
        "type": "application/dicom; transfer-syntax=1.2.840.10008.1.2.1",
        "boundary": "b0undary-123",
    }
    assert parse_content_type('multipart/related; boundary="a;b"')[1]["boundary"] == "a;b"
    one, two = b"\x00DICM\r\n--b0undary-12 body", b"second\r\n\r\n"
    body = (
        b"preamble\r\n--b0undary-123\r\nContent-Type: application/dicom\r\n"
        b"Content-Length: %d\r\n\r\n%s\r\n--b0undary-123\r\n"
        b"Content-Type: application/dicom\r\n\r\n%s\r\n--b0undary-123--\r\n"
    ) % (len(one), one, two)
    for size in (1, 3, 7, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        parts = list(iter_multipart(chunks, "b0undary-123"))
        assert [p[1] for p in parts] == [one, two]
        assert parts[0][0]["content-type"] == "application/dicom"
    with pytest.raises(PacsError, match="closing boundary"):
        list(iter_multipart([body[:-30]], "b0undary-123"))


def test_multipart_parser_drops_a_part_over_max_part_without_holding_it():
    small, big = b"\x00DICM small", b"B" * 5000
    body = (
        b"--bnd\r\nContent-Type: application/dicom\r\nContent-Length: %d\r\n\r\n%s\r\n"
        b"--bnd\r\nContent-Type: application/dicom\r\n\r\n%s\r\n"
        b"--bnd\r\nContent-Type: application/dicom\r\nContent-Length: %d\r\n\r\n%s\r\n"
        b"--bnd\r\nContent-Type: application/dicom\r\n\r\n%s\r\n--bnd--\r\n"
    ) % (len(big), big, big, len(small), small, small)
    seen_buffer = []

    def chunks():
        for i in range(0, len(body), 64):
            seen_buffer.append(i)
            yield body[i : i + 64]

    parts = [b for _, b in iter_multipart(chunks(), "bnd", max_part=1000)]
    assert parts == [Oversize(5000), Oversize(5000), small, small]
    # and without a limit every part is kept whole
    assert [b for _, b in iter_multipart([body], "bnd")] == [big, big, small, small]


def test_a_pull_is_held_to_the_file_and_import_limits(
    project, client, delivery, settings, tmp_path, monkeypatch
):
    """An instance over REFSET_MAX_FILE_MB, and instances past
    REFSET_IMPORT_MAX_TOTAL_MB over the pull, are rejections naming the setting;
    what fits is imported, and no scratch copy of the PACS's bytes is left."""
    import tempfile

    uids = [delivery.ct["study_instance_uid"], delivery.xr["study_instance_uid"]]
    sizes = sorted(len(b) for _, b in client.retrieve_study(uids[0]))
    xr_size = max(len(b) for _, b in client.retrieve_study(uids[1]))
    assert xr_size > sizes[-1]  # the radiograph is the largest instance
    mb = 1024 * 1024
    settings.REFSET_MAX_FILE_MB = 1
    # this process's scratch folders in a folder of the test's own: tests on the other
    # workers pull at the same time in the shared /tmp
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # the CT's slices fill the import total; the radiograph pulled after them is refused
    settings.REFSET_IMPORT_MAX_TOTAL_MB = sum(sizes) / mb
    report = pull(project, client, uids)
    s = report.summary()
    reasons = [f.reason for f in report.files if f.status == "rejected"]
    assert s["imported"] == len(sizes) == 4, s
    assert len(reasons) == 1 and "REFSET_IMPORT_MAX_TOTAL_MB" in reasons[0], reasons
    assert not list(tmp_path.glob("refset-pull-*"))

    settings.REFSET_IMPORT_MAX_TOTAL_MB = 50_000
    settings.REFSET_MAX_FILE_MB = (xr_size - 1) / mb
    report = pull(project, client, [uids[1]])
    (only,) = report.files
    assert only.status == "rejected" and "REFSET_MAX_FILE_MB" in only.reason, only
