"""Ingest: every bad file gets a reason, everything valid is imported, nothing
identifying is stored, re-imports are duplicates, failures leave no orphans."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom
import pytest
from django.core.files.storage import default_storage

import fixtures
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import IdentityMapping, Instance, Quarantine, Series
from annotation_server.projects.models import Case

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db


@pytest.fixture
def ct_dir(tmp_path) -> tuple[Path, dict]:
    truth = fixtures.generate_ct(tmp_path / "ct", slices=6, seed=3, matrix=64)
    (tmp_path / "ct" / "truth.json").unlink()  # a delivery holds DICOM only
    return tmp_path / "ct", truth


DEFAULT_LIMITS = Limits()


@pytest.fixture(autouse=True, params=[1, 2], ids=["serial", "workers"])
def _ingest_workers(request, settings, monkeypatch):
    """Every test here runs with files prepared in this process and in two workers
    (also beside a live server thread an earlier test left running)."""
    from annotation_server.imaging.ingest import parallel

    settings.REFSET_INGEST_WORKERS = request.param
    monkeypatch.setattr(parallel, "_other_threads", lambda: False)


def _run(project, *paths, limits=DEFAULT_LIMITS):
    return ingest(project, from_paths(paths, limits), source="test")


def _by_name(report):
    return {Path(f.name.split("!/")[-1]).name: f for f in report.files}


def test_clean_series_is_imported_deidentified_with_a_case(project, ct_dir):
    folder, truth = ct_dir
    report = _run(project, folder)
    s = report.summary()
    assert (s["imported"], s["rejected"], s["series"], s["studies"]) == (6, 0, 1, 1)
    series = Series.objects.get(study__project=project)
    assert series.series_uid != truth["series_instance_uid"]
    assert series.num_instances == 6 and series.slice_spacing_mm == pytest.approx(1.25)
    assert list(series.instances.values_list("slice_index", flat=True)) == list(range(6))
    case = Case.objects.get(series=series)
    assert case.state == Case.State.IMPORTED and case.code in report.cases
    for instance in series.instances.all():
        with default_storage.open(instance.file) as fh:
            stored = fh.read()
        for keyword, value in truth["phi"]["attributes"].items():
            if keyword.endswith("Time"):  # times are kept with the shifted-dates option
                continue
            assert str(value).encode() not in stored, keyword
        assert pydicom.dcmread(io.BytesIO(stored)).PatientIdentityRemoved == "YES"
    kinds = set(IdentityMapping.objects.filter(project=project).values_list("kind", flat=True))
    assert {"patient_id", "study_uid", "series_uid", "sop_uid"} <= kinds


def test_reimport_is_idempotent_and_reported_as_duplicates(project, ct_dir):
    folder, _ = ct_dir
    _run(project, folder)
    again = _run(project, folder)
    assert again.summary()["duplicates"] == 6 and again.summary()["imported"] == 0
    assert Instance.objects.filter(series__study__project=project).count() == 6
    assert Case.objects.filter(project=project).count() == 1


def test_a_resent_instance_with_other_bytes_is_a_duplicate_and_stores_nothing(
    project, ct_dir, tmp_path, settings
):
    folder, _ = ct_dir
    _run(project, folder)
    root = Path(settings.MEDIA_ROOT)
    before = {p for p in root.rglob("*") if p.is_file()}
    resent = tmp_path / "resent"
    resent.mkdir()
    for path in sorted(folder.glob("*.dcm"))[:2]:  # same UIDs, a changed description
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = "sent again by the PACS"
        ds.save_as(resent / path.name)
    again = _run(project, resent)
    assert again.summary()["duplicates"] == 2 and again.summary()["imported"] == 0
    assert {p for p in root.rglob("*") if p.is_file()} == before  # no orphan object
    assert Instance.objects.filter(series__study__project=project).count() == 6


def test_bad_files_are_rejected_with_reasons_and_the_rest_imported(project, ct_dir):
    folder, _ = ct_dir
    good = sorted(folder.glob("*.dcm"))
    (folder / "empty.dcm").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / "truncated.dcm").write_bytes(good[0].read_bytes()[:3000])
    dicomdir = pydicom.dcmread(pydicom.data.get_testdata_file("DICOMDIR"))
    dicomdir.save_as(folder / "DICOMDIR")
    report = _run(project, folder)
    results = _by_name(report)
    assert "empty file" in results["empty.dcm"].reason
    assert "not a DICOM file" in results["notes.txt"].reason
    assert "truncated" in results["truncated.dcm"].reason
    assert "DICOMDIR" in results["DICOMDIR"].reason
    s = report.summary()
    assert s["imported"] == 6 and s["rejected"] == 4, report.as_dict()


def test_files_over_the_size_limit_are_rejected(project, ct_dir):
    folder, _ = ct_dir
    size = min(f.stat().st_size for f in folder.glob("*.dcm"))
    report = _run(project, folder, limits=Limits(max_file_bytes=size - 1))
    assert report.summary()["rejected"] == 6
    assert all("file limit" in f.reason for f in report.files)


def test_zip_with_traversal_and_bomb_members_loses_nothing_valid(project, ct_dir, tmp_path):
    folder, _ = ct_dir
    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(folder.glob("*.dcm")):
            zf.write(f, f"CT/{f.name}")
        zf.writestr("../../etc/evil.dcm", b"x" * 100)
        zf.writestr("bomb.dcm", b"\0" * (50 * 1024 * 1024))
    report = _run(project, archive)
    results = {f.name.split("!/")[-1]: f for f in report.files}
    assert "unsafe path" in results["../../etc/evil.dcm"].reason
    assert "zip bomb" in results["bomb.dcm"].reason
    assert report.summary()["imported"] == 6
    assert not Path("/etc/evil.dcm").exists()


def test_series_with_disagreeing_geometry_rejects_the_odd_slice(project, tmp_path):
    datasets, _ = fixtures.build_ct_datasets(slices=5, seed=4, matrix=64)
    odd = fixtures.build_ct_datasets(slices=1, seed=4, matrix=32)[0][0]
    odd.SeriesInstanceUID = datasets[0].SeriesInstanceUID
    odd.StudyInstanceUID = datasets[0].StudyInstanceUID
    odd.SOPInstanceUID = pydicom.uid.generate_uid()
    odd.file_meta.MediaStorageSOPInstanceUID = odd.SOPInstanceUID
    for i, ds in enumerate([*datasets, odd]):
        ds.save_as(tmp_path / f"{i}.dcm", enforce_file_format=True)
    report = _run(project, tmp_path)
    rejected = [f for f in report.files if f.status == "rejected"]
    assert [f.name for f in rejected] == [str(tmp_path / "5.dcm")]
    assert "geometry disagrees" in rejected[0].reason and "32x32" in rejected[0].reason
    assert report.summary()["imported"] == 5


def test_burned_in_text_is_quarantined_not_admitted(project, tmp_path):
    fixtures.generate_xr(tmp_path, seed=5, size=256, defect="burned-in-text")
    (tmp_path / "truth.json").unlink()
    report = _run(project, tmp_path)
    assert report.summary()["quarantined"] == 1 and report.summary()["imported"] == 0
    assert Quarantine.objects.filter(project=project, status="pending").count() == 1
    assert not Series.objects.filter(study__project=project).exists()


def test_failure_while_indexing_leaves_no_orphan_file(project, ct_dir, monkeypatch, settings):
    folder, _ = ct_dir
    from annotation_server.imaging import services

    def explode(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "index_entries", explode)
    report = _run(project, folder)
    assert report.summary()["rejected"] == 6
    assert all("could not be stored" in f.reason for f in report.files)
    assert not Instance.objects.exists()
    assert not [p for p in (Path(settings.MEDIA_ROOT) / "instances").rglob("*") if p.is_file()]


def test_cli_exit_codes(project, ct_dir, tmp_path, settings):
    folder, _ = ct_dir
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.fail("the CLI test runs against PostgreSQL (make test)")
    env_db = connection.settings_dict
    url = f"postgresql://{env_db['USER']}@{env_db['HOST']}:{env_db['PORT']}/{env_db['NAME']}"
    import os

    env = dict(os.environ, DATABASE_URL=url, REFSET_MEDIA_ROOT=str(settings.MEDIA_ROOT))
    cmd = [sys.executable, "manage.py", "import_dicom"]
    usage = subprocess.run([*cmd, str(folder)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "--project" in usage.stderr
    unknown = subprocess.run(
        [*cmd, str(folder), "--project", "nope"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "no project" in unknown.stderr


def test_cli_imports_and_reports(project, ct_dir, tmp_path, capsys):
    from django.core.management import call_command

    folder, _ = ct_dir
    (folder / "junk.bin").write_bytes(b"junk")
    with pytest.raises(SystemExit) as exit_:
        call_command("import_dicom", str(folder), "--project", project.slug, "--quiet")
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert "6 instances imported into 1 new series" in out
    assert "REJECTED" in err and "junk.bin" in err and "not a DICOM file" in err
    call_command("import_dicom", str(folder / "CT_0001.dcm"), "--project", project.slug, "--quiet")
    assert "1 duplicates skipped" in capsys.readouterr().out


def test_cli_report_cannot_be_forged_by_a_file_name(project, tmp_path, capsys):
    """A file name with a carriage return and a newline once printed a fake
    summary line; names (and reasons) are shown with control characters escaped."""
    from django.core.management import call_command

    folder = tmp_path / "delivery"
    folder.mkdir()
    (folder / "x\rFAKE: 999 instances imported\n\x1b[2K王.dcm").write_bytes(b"junk")
    with pytest.raises(SystemExit):
        call_command("import_dicom", str(folder), "--project", project.slug, "--quiet")
    out, err = capsys.readouterr()
    rejected = [line for line in err.splitlines() if line.startswith("REJECTED")]
    assert len(rejected) == 1
    assert "x\\x0dFAKE: 999 instances imported\\x0a\\x1b[2K王.dcm" in rejected[0]
    assert not any(line.startswith("FAKE") for line in (out + err).splitlines())
    assert "\r" not in err and "\x1b" not in err


def test_every_real_dicom_file_is_imported_or_rejected_with_a_reason(project):
    from tests.real_dicom import real_dicom_files

    files = real_dicom_files()
    report = _run(project, *files)
    assert len(report.files) == len(files)
    for f in report.files:
        assert f.status in ("imported", "duplicate", "quarantined", "rejected")
        if f.status == "rejected":
            assert f.reason and "could not process" not in f.reason, (f.name, f.reason)
    assert report.summary()["imported"] >= 30  # many test files share UIDs or lack pixels


def test_only_managers_can_upload(project, reader_a, outsider, client_for):
    for person in (reader_a, outsider):
        response = client_for(person).post(
            f"/api/v1/projects/{project.slug}/imports/",
            {"files": [io.BytesIO(b"x")]},
            format="multipart",
        )
        assert response.status_code in (403, 404)
    from annotation_server.jobs.models import Job

    assert not Job.objects.exists()


def test_unsupported_transfer_syntax_and_mixed_patients_are_named(project, tmp_path):
    datasets, _ = fixtures.build_ct_datasets(slices=4, seed=15, matrix=64)
    # a slice claiming a transfer syntax nothing here can decode (MPEG-4)
    odd_ts = fixtures.build_ct_datasets(slices=1, seed=16, matrix=64)[0][0]
    odd_ts.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"
    odd_ts.PixelData = pydicom.encaps.encapsulate([odd_ts.PixelData])
    # a slice of the same series from another patient
    stranger = datasets[3]
    stranger.PatientID = "SOMEONE-ELSE"
    for i, ds in enumerate(datasets):
        ds.save_as(tmp_path / f"{i}.dcm", enforce_file_format=True)
    data = fixtures.dataset_bytes(odd_ts)
    (tmp_path / "mpeg.dcm").write_bytes(data)
    report = _run(project, tmp_path)
    results = _by_name(report)
    assert "unsupported transfer syntax" in results["mpeg.dcm"].reason
    assert "mixes patients" in results["3.dcm"].reason
    assert report.summary()["imported"] == 3
