"""Fundus photographs through the one ingest pipeline: a folder or an upload of
JPEG/PNG/TIFF photographs plus manifest.csv becomes de-identified OP instances
(laterality from the manifest, pseudonyms from the key store), with every bad
row, orphan file and undecodable image refused on its own report line, burned-in
text quarantined, and no fixture PHI or original file name stored anywhere."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest
from django.apps import apps
from django.core.files.storage import default_storage
from django.core.management import call_command

from annotation_server.accounts.models import Role
from annotation_server.imaging.deid import Deidentifier
from annotation_server.imaging.ingest import keys
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import IdentityMapping, Instance, Quarantine, Series
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role
from fixtures import fundus
from tests import factories

pytestmark = pytest.mark.django_db

SIZE = 384
# (seed, laterality, format, burned-in overlay)
PHOTOS = [
    (1, "OD", "jpeg", False),
    (1, "OS", "png", False),
    (2, "OD", "tiff", False),
    (2, "OS", "jpeg", False),
]


@pytest.fixture
def fundus_project(manager):
    project = factories.ProjectFactory(slug="fundus", name="Fundus DR", modality="OP")
    grant_role(project, manager, Role.MANAGER)
    return project


def _photo(seed, lat, fmt, overlay=False):
    rgb, truth = fundus.build_fundus(seed, laterality=lat, size=SIZE, overlay=overlay, grade=1)
    truth["laterality"] = lat
    return fundus.encode_photo(rgb, truth, fmt), fundus.file_name(truth, fmt), truth


def _delivery(folder: Path, *, extra_rows: str = "", overlay_seed: int | None = None):
    """Photos under clinic/<PHI file name>, a manifest naming them; returns the PHI
    strings (metadata, file names, manifest identifiers) and the file names."""
    phi: set[str] = set()
    names: list[str] = []
    rows = ["filename,patient_id,visit_id,laterality,camera"]
    specs = list(PHOTOS) + ([(overlay_seed, "OD", "jpeg", True)] if overlay_seed else [])
    for seed, lat, fmt, overlay in specs:
        data, name, truth = _photo(seed, lat, fmt, overlay)
        (folder / "clinic").mkdir(parents=True, exist_ok=True)
        (folder / "clinic" / name).write_bytes(data)
        pid = fundus._phi_values(truth)["patient_id"]
        visit = f"VISIT-{pid}-{fundus._phi_values(truth)['date']}"
        rows.append(f"clinic/{name},{pid},{visit},{lat},Topcon TRC-NW400")
        phi |= set(fundus.phi_strings(truth)) | {name, pid, visit}
        names.append(name)
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n" + extra_rows)
    return sorted(s for s in phi if len(s) >= 5), names


def _assert_nothing_identifying(phi: list[str], report_dict: dict) -> None:
    blobs = {}
    for instance in Instance.objects.all():
        with default_storage.open(instance.file) as fh:
            blobs[f"instance {instance.pk}"] = fh.read()
    for q in Quarantine.objects.all():
        with default_storage.open(q.file) as fh:
            blobs[f"quarantine {q.pk}"] = fh.read()
    rows = []
    for model in apps.get_models():
        for values in model.objects.values():
            rows.append(json.dumps(values, default=str, ensure_ascii=False))
    db = "\n".join(rows)
    report = json.dumps(report_dict, ensure_ascii=False)
    for s in phi:
        for where, blob in blobs.items():
            assert s.encode() not in blob, (s, where)
        assert s not in db, s
        assert s not in report, s


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "workers"])
def test_folder_of_photos_with_manifest_imports_as_op_with_laterality(
    fundus_project, manager, tmp_path, workers, caplog, monkeypatch
):
    from annotation_server.imaging.ingest import parallel

    monkeypatch.setattr(parallel, "_other_threads", lambda: False)
    phi, _ = _delivery(tmp_path)
    report = ingest(
        fundus_project,
        from_paths([tmp_path], Limits()),
        user=manager,
        source="test",
        workers=workers,
    )
    assert report.workers == workers
    s = report.summary()
    assert (s["imported"], s["rejected"], s["patients"], s["studies"]) == (4, 0, 2, 2), [
        (f.name, f.reason) for f in report.files
    ]
    assert s["series"] == 4 and len(report.cases) == 4
    instances = Instance.objects.select_related("series__study")
    assert instances.count() == 4
    lats = []
    for instance in instances:
        assert instance.series.modality == "OP"
        with default_storage.open(instance.file) as fh:
            ds = pydicom.dcmread(fh)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.5.1"
        assert ds.Modality == "OP" and ds.SamplesPerPixel == 3
        assert ds.PatientIdentityRemoved == "YES"
        lats.append(ds.ImageLaterality)
        # recorded at import: the file format it came as and its laterality
        assert instance.laterality == ds.ImageLaterality
    assert sorted(lats) == ["L", "L", "R", "R"]
    formats = sorted(Instance.objects.values_list("source_format", flat=True))
    assert formats == sorted(fmt.upper() for _, _, fmt, _ in PHOTOS)
    # every photo is named by its manifest line, never by its file name
    assert sorted(f.name for f in report.files) == [
        f"photo, manifest line {n}" for n in (2, 3, 4, 5)
    ]
    _assert_nothing_identifying(phi, report.as_dict())
    assert not [p for p in phi if p in caplog.text]


def test_pseudonyms_come_from_the_key_store_and_repeat_across_imports(
    fundus_project, manager, tmp_path, settings
):
    _delivery(tmp_path / "a")
    ingest(fundus_project, from_paths([tmp_path / "a"], Limits()), source="test")
    deid = Deidentifier(keys.project_secret(fundus_project))
    pid = next(
        line.split(",")[1]
        for line in (tmp_path / "a" / "manifest.csv").read_text().splitlines()[1:2]
    )
    pseudonym = deid.pseudonym(pid)
    studies = {
        i.series.study.patient_pseudo_id for i in Instance.objects.select_related("series__study")
    }
    assert pseudonym in studies and len(studies) == 2
    mapping = IdentityMapping.objects.get(
        project=fundus_project, kind="patient_id", replacement=pseudonym
    )
    assert mapping.original_encrypted and pid not in mapping.original_encrypted
    visits = IdentityMapping.objects.filter(project=fundus_project, kind="visit_id")
    study_uids = set(Series.objects.values_list("study__study_uid", flat=True))
    assert visits.count() == 2 and set(visits.values_list("replacement", flat=True)) == study_uids
    # the key store gives the originals back (permission-checked, audited)
    admin = factories.UserFactory(is_superuser=True, is_staff=True)
    assert keys.reveal(admin, mapping, reason="test") == pid
    assert {keys.reveal(admin, v, reason="test") for v in visits} == {
        line.split(",")[2]
        for line in (tmp_path / "a" / "manifest.csv").read_text().splitlines()[1:]
    }
    # the same photographs again: duplicates, same pseudonyms, nothing new
    again = ingest(fundus_project, from_paths([tmp_path / "a"], Limits()), source="test")
    assert again.summary()["duplicates"] == 4 and again.summary()["imported"] == 0
    assert Instance.objects.count() == 4
    # one of them copied under another name, with a new visit: same patient pseudonym
    src = sorted((tmp_path / "a" / "clinic").iterdir())[0]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.jpg").write_bytes(src.read_bytes())
    (tmp_path / "b" / "manifest.csv").write_text(
        f"filename,patient_id,visit_id,laterality\nx.jpg,{pid},NEXT-VISIT,OD\n"
    )
    third = ingest(fundus_project, from_paths([tmp_path / "b"], Limits()), source="test")
    assert third.summary()["imported"] == 1, [(f.name, f.reason) for f in third.files]
    newest = Instance.objects.order_by("-pk").select_related("series__study").first()
    assert newest.series.study.patient_pseudo_id == pseudonym


def test_bad_rows_orphans_and_broken_images_are_refused_and_the_rest_imports(
    fundus_project, tmp_path, settings
):
    phi, _ = _delivery(
        tmp_path,
        extra_rows=(
            "missing.jpg,PX1,V1,OD,\n"  # line 6: no such file
            "broken.jpg,PX2,V2,OS,\n"  # line 7: not decodable
            "odd.png,PX3,V3,XX,\n"  # line 8: bad laterality
        ),
    )
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    odd, odd_name, _ = _photo(7, "OD", "png")
    (tmp_path / "odd.png").write_bytes(odd)
    orphan, orphan_name, _ = _photo(8, "OS", "jpeg")
    (tmp_path / orphan_name).write_bytes(orphan)
    report = ingest(fundus_project, from_paths([tmp_path], Limits()), source="test")
    s = report.summary()
    assert s["imported"] == 4, [(f.name, f.reason) for f in report.files]
    rejected = {f.name: f.reason for f in report.files if f.status == "rejected"}
    assert "no photograph with this file name" in rejected["manifest line 6"]
    assert "not a readable photograph" in rejected["photo, manifest line 7"]
    assert "OD or OS" in rejected["manifest line 8, column laterality"]
    assert "manifest line has problems" in rejected["photo, manifest line 8"]
    orphan_lines = [r for n, r in rejected.items() if "not listed in the manifest" in r]
    assert len(orphan_lines) == 1 and "sha256" in orphan_lines[0]
    assert not any(orphan_name in n or odd_name in n for n in rejected)
    _assert_nothing_identifying([*phi, orphan_name, odd_name], report.as_dict())


def test_photos_without_a_manifest_are_refused_with_the_reason(fundus_project, tmp_path):
    data, name, _ = _photo(3, "OD", "jpeg")
    (tmp_path / name).write_bytes(data)
    report = ingest(fundus_project, from_paths([tmp_path], Limits()), source="test")
    (only,) = report.files
    assert only.status == "rejected" and "needs a manifest" in only.reason
    assert name not in only.name and not Instance.objects.exists()


def test_burned_in_overlay_is_quarantined_and_qc_runs_photo_rules(
    fundus_project, manager, tmp_path, settings, django_capture_on_commit_callbacks
):
    phi, _ = _delivery(tmp_path, overlay_seed=5)
    with django_capture_on_commit_callbacks(execute=False):
        report = ingest(fundus_project, from_paths([tmp_path], Limits()), user=manager)
    s = report.summary()
    assert (s["imported"], s["quarantined"]) == (4, 1), [(f.name, f.reason) for f in report.files]
    q = Quarantine.objects.get()
    assert q.modality == "OP"
    qc_job = Job.objects.get(kind="qc.check_cases")
    jobs.execute(qc_job.pk)
    from annotation_server.quality.models import QcReport

    reports = QcReport.objects.filter(case__project=fundus_project)
    assert reports.count() == 4
    rules = {r["rule"] for r in reports.first().results}
    assert any(r.startswith("photo") for r in rules), rules
    assert Case.objects.filter(project=fundus_project, state=Case.State.QC).count() == 4
    _assert_nothing_identifying(phi, report.as_dict())


def test_cli_imports_a_folder_and_exits_1_when_some_were_refused(
    fundus_project, tmp_path, settings
):
    _delivery(tmp_path, extra_rows="missing.jpg,PX1,V1,OD,\n")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command(
            "import_dicom", str(tmp_path), project="fundus", quiet=True, stdout=out, stderr=err
        )
    assert exit_.value.code == 1
    assert Instance.objects.count() == 4
    assert "manifest line 6" in out.getvalue() + err.getvalue()
    assert "4 instances imported" in out.getvalue()


def test_rest_upload_with_manifest_keeps_no_file_name_in_the_job(
    fundus_project, manager, client_for, tmp_path, settings
):
    phi, names = _delivery(tmp_path)
    files, paths = [], []
    for path in sorted(p for p in tmp_path.rglob("*") if p.is_file()):
        f = io.BytesIO(path.read_bytes())
        f.name = path.name
        files.append(f)
        paths.append(str(path.relative_to(tmp_path)))
    response = client_for(manager).post(
        f"/api/v1/projects/{fundus_project.slug}/imports/",
        {"files": files, "paths": paths},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert not any(n in json.dumps(job.params) for n in names)
    jobs.execute(job.pk)
    job.refresh_from_db()
    assert job.result["summary"]["imported"] == 4, job.result
    leftovers = [
        f
        for d in default_storage.listdir("uploads")[0]
        for f in default_storage.listdir(f"uploads/{d}")[1]
    ]
    assert leftovers == []  # the uploads and their names.json are gone
    _assert_nothing_identifying(phi, job.result)


def test_with_the_text_detector_off_every_photo_is_held_for_review(
    fundus_project, tmp_path, settings
):
    settings.REFSET_BURNED_IN_OCR = False
    data, _, truth = _photo(4, "OS", "png")
    (tmp_path / "a.png").write_bytes(data)
    (tmp_path / "manifest.csv").write_text(
        "filename,patient_id,visit_id,laterality\na.png,PX9,V9,OS\n"
    )
    report = ingest(fundus_project, from_paths([tmp_path], Limits()), source="test")
    (only,) = report.files
    assert only.status == "quarantined" and not Instance.objects.exists()
    assert Quarantine.objects.get().modality == "OP"


def test_a_released_photo_keeps_the_file_format_it_came_as(
    fundus_project, manager, tmp_path, settings, django_capture_on_commit_callbacks
):
    from annotation_server.imaging.ingest import quarantine

    settings.REFSET_BURNED_IN_OCR = False  # every photograph is held
    data, _, _ = _photo(4, "OS", "tiff")
    (tmp_path / "a.tif").write_bytes(data)
    (tmp_path / "manifest.csv").write_text(
        "filename,patient_id,visit_id,laterality\na.tif,PX9,V9,OS\n"
    )
    ingest(fundus_project, from_paths([tmp_path], Limits()), source="test")
    item = Quarantine.objects.get()
    assert item.source_format == "TIFF"
    with django_capture_on_commit_callbacks(execute=False):
        instance = quarantine.release(item, manager, "no burned-in text on review")
    assert (instance.source_format, instance.laterality) == ("TIFF", "L")


def test_a_dicom_photograph_records_dicom_and_its_laterality(
    fundus_project, manager, tmp_path, django_capture_on_commit_callbacks
):
    from annotation_server.imaging.ingest import quarantine
    from annotation_server.imaging.photo import decode_photo, dicom_bytes, photo_to_dicom

    data, _, _ = _photo(6, "OD", "png")
    ds = photo_to_dicom(decode_photo(data), laterality="OD", patient_id="PX1", study_id="V1")
    (tmp_path / "eye.dcm").write_bytes(dicom_bytes(ds))
    report = ingest(fundus_project, from_paths([tmp_path], Limits()), source="test")
    (only,) = report.files
    assert only.status == "quarantined", only.reason  # photograph classes are reviewed
    item = Quarantine.objects.get()
    assert item.source_format == "DICOM"
    with django_capture_on_commit_callbacks(execute=False):
        instance = quarantine.release(item, manager, "no burned-in text on review")
    assert (instance.source_format, instance.laterality) == ("DICOM", "R")
