"""Exporting a frozen fundus version end to end (issue 18).

Synthetic fundus photographs (fixtures/fundus.py: JPEG, PNG and TIFF files full of
fake PHI in their metadata and file names) are imported with a manifest, read by
three readers on the fundus-dr schema (DR grade, DMO, a microaneurysm point, a
haemorrhage box, disc and cup outlines), settled (one case by agreement, one by a
signed arbitration of the grade through the API, one ungradable), frozen and
exported from the version page with a session login. The package verifies; the
photographs come back in their source pixel format with no metadata and no PHI
byte, lossless ones equal to the DICOM pixels and the JPEG close to them; the
grades and reads tables say what the reference and the readers said; the COCO
loads with pycocotools; every DICOM passes dciodvfy.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import zipfile

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.test import TestCase
from PIL import Image

from annotation_server.adjudication import services as adjudication
from annotation_server.adjudication.models import ReferenceFinding, ReferenceLabels
from annotation_server.datasets import services
from annotation_server.datasets.package_input import build_package_input
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.reading import services as reading
from annotation_server.reading.models import ReadingTask
from export import fundus as fundus_export
from export.package import write_package
from export.verify import photo_metadata, verify, verify_photos
from fixtures import fundus
from tests import factories
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

SIZE = 256
# (seed, eye, source format) -> one case each (one series per visit and eye)
PHOTOS = [(1, "OD", "jpeg"), (1, "OS", "png"), (2, "OD", "tiff")]
DIAMOND = [[120, 60], [170, 110], [120, 160], [70, 110]]
DISC = {"kind": "polygon", "shapes": [{"slice_index": 0, "points": DIAMOND}]}
CUP = {"kind": "ellipse", "shapes": [{"slice_index": 0, "points": [[110, 90], [150, 150]]}]}
POINT = {"kind": "point", "shapes": [{"slice_index": 0, "points": [[40.5, 200.25]]}]}
BOX = {"kind": "box", "shapes": [{"slice_index": 0, "points": [[180, 30], [210, 52]]}]}
# per case (by source format): the three readers' grades and DMO
GRADES = {
    "jpeg": ([2, 2, 2], "absent"),  # agreement: grade 2, referable
    "png": ([1, 3, 3], "absent"),  # differ by 2: arbitrated to 3
    "tiff": (["ungradable"] * 3, "ungradable"),  # all ungradable
}


def _delivery(folder):
    """Photos named like a camera names them (PHI), a manifest; PHI strings and truth."""
    phi: set[str] = set()
    rows = ["filename,patient_id,visit_id,laterality,camera"]
    truths = {}
    for seed, eye, fmt in PHOTOS:
        rgb, truth = fundus.build_fundus(seed, laterality=eye, size=SIZE, grade=1)
        truth["laterality"] = eye
        name = fundus.file_name(truth, fmt)
        (folder / "clinic").mkdir(parents=True, exist_ok=True)
        (folder / "clinic" / name).write_bytes(fundus.encode_photo(rgb, truth, fmt))
        values = fundus._phi_values(truth)
        pid, visit = values["patient_id"], f"VISIT-{values['patient_id']}-{values['date']}"
        rows.append(f"clinic/{name},{pid},{visit},{eye},Topcon TRC-NW400")
        phi |= set(fundus.phi_strings(truth)) | {name, pid, visit}
        truths[fmt] = (eye, pid, visit)
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")
    return sorted(s for s in phi if len(s) >= 5), truths


def _read(task, reader, grade, dmo):
    for ftype, geometry in (
        ("optic_disc", DISC),
        ("optic_cup", CUP),
        ("microaneurysm", POINT),
        ("haemorrhage", BOX),
    ):
        reading.save_finding(task, reader, finding_type=ftype, geometry=dict(geometry))
    values = {"dr_grade": grade, "dmo": dmo}
    if grade == 2:
        values["other_findings"] = ["glaucoma_suspect"]
    reading.save_case_label(task, reader, values, expected_version=None)
    ReadingTask.objects.filter(pk=task.pk).update(state=ReadingTask.State.SUBMITTED)


def _arbitrate(case, arbitrator, client_for, grade):
    api = client_for(arbitrator)
    (listed,) = api.get("/api/v1/arbitration-tasks/?mine=true").json()["results"]
    detail = api.get(f"/api/v1/arbitration-tasks/{listed['id']}/").json()
    put = api.put(
        f"/api/v1/arbitration-tasks/{listed['id']}/decisions/",
        {
            "decisions": {
                "labels": {
                    "dr_grade": {"value": grade, "reason_code": "other", "reason_text": "IRMA"}
                }
            },
            "version": detail["version"],
        },
        format="json",
    )
    assert put.status_code == 200, put.json()
    signed = api.post(
        f"/api/v1/arbitration-tasks/{listed['id']}/sign/",
        {"password": PASSWORD, "version": put.json()["version"]},
    )
    assert signed.status_code == 200, signed.json()
    return listed["id"]


@pytest.fixture
def fundus_version(project, readers, arbitrator, manager, client_for, tmp_path, settings):
    settings.REFSET_EXPORT_DIR = tmp_path / "exports"
    project.label_schema = factories.schema("fundus-dr")
    project.modality = "OP"
    project.slug, project.name = "fundus", "Fundus DR"
    project.save()
    p = project.protocol
    p.auto_accept_min_readers = 3
    p.drop_below_readers = 1
    p.match_rule = "centre_distance"
    p.match_threshold = 5.0
    p.save()
    phi, truths = _delivery(tmp_path / "delivery")
    report = ingest(project, from_paths([tmp_path / "delivery"], Limits()), source="test")
    assert report.summary()["imported"] == 3, [(f.name, f.reason) for f in report.files]
    cases = list(Case.objects.filter(project=project).select_related("series__study"))
    assert len(cases) == 3
    by_format = _cases_by_format(cases)
    arbitration = {}
    for fmt, case in by_format.items():
        Case.objects.filter(pk=case.pk).update(state=Case.State.READING)
        marks, dmo = GRADES[fmt]
        for reader, grade in zip(readers, marks, strict=True):
            _read(factories.TaskFactory(case=case, reader=reader), reader, grade, dmo)
        settlement = adjudication.settle_case(case.pk)
        if fmt == "png":
            arbitration[fmt] = _arbitrate(case, arbitrator, client_for, 3)
        case.refresh_from_db()
        assert case.state == Case.State.ADJUDICATED, (
            fmt,
            settlement.label_disputes,
            [(c.verdict, c.reasons) for c in settlement.clusters.all()],
        )
    draft = services.create_draft(
        project, version="1.0.0", by=manager, all_adjudicated=True, seed=5,
        ratios={"train": 0.5, "validation": 0.0, "test": 0.5},
    )  # fmt: skip
    version = services.freeze(draft, by=manager)
    return version, by_format, truths, phi, arbitration


def _cases_by_format(cases) -> dict:
    """The case of each source format: the JPEG is the lossy one, the PNG the only
    OS eye, the TIFF the other OD."""
    out = {}
    for case in cases:
        inst = case.series.instances.get()
        head = fundus_export.header(default_storage.path(inst.file))
        if head.lossy:
            out["jpeg"] = case
        elif head.laterality == "OS":
            out["png"] = case
        else:
            out["tiff"] = case
    assert sorted(out) == ["jpeg", "png", "tiff"]
    return out


def _rows(path) -> list[dict]:
    with open(path, encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def package(fundus_version, tmp_path):
    version, by_format, truths, phi, arbitration = fundus_version
    inp = build_package_input(version)
    # the import records no source format: the TIFF case says so here, as an import
    # that kept it would (InstanceRecord.source_format), and the package follows it
    from dataclasses import replace

    tiff_code = by_format["tiff"].code
    cases = tuple(
        replace(
            c,
            series=tuple(
                replace(s, instances=tuple(replace(i, source_format="TIFF") for i in s.instances))
                for s in c.series
            ),
        )
        if c.case_id == tiff_code
        else c
        for c in inp.cases
    )
    inp = replace(inp, cases=cases)
    root = write_package(inp, tmp_path / "pkg")
    return inp, root, by_format, truths, phi, arbitration


def test_the_package_verifies_and_holds_each_photo_in_its_source_format(package):
    inp, root, by_format, _, _, _ = package
    assert verify(root) == []
    call_command("verify_package", str(root))
    photos = {r["case_id"]: r for r in _rows(root / "tables/photos.csv")}
    assert len(photos) == 3
    expect = {"jpeg": ("JPEG", ".jpg"), "png": ("PNG", ".png"), "tiff": ("TIFF", ".tif")}
    for fmt, case in by_format.items():
        row = photos[case.code]
        name, ext = expect[fmt]
        assert row["source_format"] == row["photo_format"] == name
        assert row["photo_path"] == f"photos/{case.code}/{case.code}-1{ext}"
        assert row["lossy_source"] == ("true" if fmt == "jpeg" else "false")
        data = (root / row["photo_path"]).read_bytes()
        dicom = fundus_export.dicom_pixels(str(root / row["dicom_path"]))
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == name
            assert "icc_profile" not in im.info and "exif" not in im.info
            assert name == "TIFF" or not im.getexif()  # a TIFF's own IFD reads as EXIF
            assert not [k for k in im.info if "xmp" in k.lower() or k in ("comment", "jfif")]
            if name == "TIFF":
                assert set(im.tag_v2) <= fundus_export.TIFF_IMAGE_TAGS
            if name == "PNG":
                assert im.info == {} and not im.text
            pixels = np.asarray(im)
        assert photo_metadata(data) == []
        assert pixels.shape == dicom.shape == (SIZE, SIZE, 3)
        if fmt == "jpeg":
            quality = fundus_export.psnr(dicom, pixels)
            assert quality >= fundus_export.JPEG_MIN_PSNR_DB
            assert float(row["psnr_db"]) == pytest.approx(quality, abs=0.01)
            assert not np.array_equal(pixels, dicom) or quality == float("inf")
        else:
            assert np.array_equal(pixels, dicom) and row["psnr_db"] == ""
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["photographs"]["source_formats"] == {"JPEG": 1, "PNG": 1, "TIFF": 1}
    docs = json.loads((root / "docs/photos.json").read_text())
    assert docs["jpeg"]["quality"] == fundus_export.JPEG_QUALITY
    readme = (root / "README.md").read_text()
    assert "照片 Photographs" in readme and "photos/<case_id>/<image_id>" in readme


def test_no_byte_of_the_source_metadata_or_file_names_is_in_the_package(package):
    _, root, _, _, phi, _ = package
    assert len(phi) > 10
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        data = path.read_bytes()
        for needle in phi:
            assert needle.encode() not in data, (path.name, needle)
            assert needle not in path.as_posix(), (path, needle)


def test_the_grades_table_is_the_reference_per_photo(package):
    inp, root, by_format, truths, _, arbitration = package
    grades = {r["case_id"]: r for r in _rows(root / "annotations/fundus_grades.csv")}
    cases = {r["case_id"]: r for r in _rows(root / "tables/cases.csv")}
    assert len(grades) == 3
    expect = {
        "jpeg": ("2", "absent", "true", "glaucoma_suspect", "auto-consensus"),
        "png": ("3", "absent", "true", "", "arbitrated"),
        "tiff": ("ungradable", "ungradable", "", "", "auto-consensus"),
    }
    for fmt, case in by_format.items():
        row = grades[case.code]
        ref = ReferenceLabels.objects.get(case=case, is_current=True)
        grade, dmo, referable, others, decision = expect[fmt]
        assert (row["dr_grade"], row["dmo"], row["referable_dr"]) == (grade, dmo, referable)
        assert str(ref.values["dr_grade"]) == row["dr_grade"]
        assert row["other_findings"] == others
        assert row["grade_decision"] == decision and row["dmo_decision"] == "auto-consensus"
        assert row["laterality"] == truths[fmt][0]
        assert row["patient_pseudo_id"] == cases[case.code]["patient_pseudo_id"]
        assert row["visit_uid"] == cases[case.code]["study_uid"] == case.series.study.study_uid
        assert row["image_id"] == f"{case.code}-1" and row["n_reads"] == "3"
        # readers: disc rows 60..160 (100 px), cup rows 90..150 (60 px): 0.6; the
        # reference outlines are the readers' consensus shapes, so close to it
        assert row["vertical_cdr"] == str(ref.derived["vertical_cdr"])
        assert float(row["vertical_cdr"]) == pytest.approx(0.6, abs=0.05)
        if fmt == "png":
            assert row["arbitration_id"] == str(arbitration["png"])
            assert sorted(g.rsplit(":", 1)[1] for g in row["reader_grades"].split(";")) == [
                "1", "3", "3",
            ]  # fmt: skip
        else:
            assert row["arbitration_id"] == ""
    # the two eyes of patient 1 share the patient pseudonym, not the visit eye
    assert (
        grades[by_format["jpeg"].code]["patient_pseudo_id"]
        == (grades[by_format["png"].code]["patient_pseudo_id"])
    )
    reads = _rows(root / "annotations/fundus_reads.csv")
    assert len(reads) == 9
    png_reads = [r for r in reads if r["case_id"] == by_format["png"].code]
    assert sorted(r["dr_grade"] for r in png_reads) == ["1", "3", "3"]
    assert {r["referable_dr"] for r in png_reads} == {"false", "true"}
    for r in reads:
        assert r["n_lesions"] == "2" and r["vertical_cdr"] == "0.6"
        assert r["lesion_counts"] == "microaneurysm:1;haemorrhage:1"
        assert (r["disc_outlined"], r["cup_outlined"]) == ("true", "true")
    dictionary = _rows(root / "dictionary/data_dictionary.csv")
    described = {(d["file"], d["column"]) for d in dictionary}
    tables = ("annotations/fundus_grades.csv", "annotations/fundus_reads.csv", "tables/photos.csv")
    for rel in tables:
        with open(root / rel, encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh))
        assert {(rel, c) for c in header} <= described
        assert (root / rel).read_bytes().startswith(b"\xef\xbb\xbf")
    grade_row = next(d for d in dictionary if d["file"] == tables[0] and d["column"] == "dr_grade")
    assert grade_row["allowed_values"] == "0..4;ungradable" and grade_row["description_zh"]


def test_lesions_and_disc_cup_outlines_load_as_coco(package):
    coco_api = pytest.importorskip("pycocotools.coco")
    inp, root, by_format, _, _, _ = package
    api = coco_api.COCO(str(root / "annotations/coco/reference.json"))
    images = api.loadImgs(api.getImgIds())
    assert len(images) == 3
    photos = {r["image_id"]: r for r in _rows(root / "tables/photos.csv")}
    for image in images:
        assert image["file_name"] == photos[image["image_id"]]["photo_path"]
        assert (root / image["file_name"]).is_file() and (root / image["dicom_file_name"]).is_file()
        assert (image["width"], image["height"]) == (SIZE, SIZE)
    cats = {c["name"]: c for c in api.loadCats(api.getCatIds())}
    assert cats["optic_disc"]["supercategory"] == cats["optic_cup"]["supercategory"] == "anatomy"
    assert cats["microaneurysm"]["keypoints"] == ["centre"]
    anns = api.loadAnns(api.getAnnIds())
    assert len(anns) == 3 * 4
    refs = {str(r.ref_key): r for r in ReferenceFinding.objects.filter(is_current=True)}
    for ann in anns:
        ref = next(r for k, r in refs.items() if ann["ref_finding_id"].startswith(k))
        name = api.loadCats(ann["category_id"])[0]["name"]
        assert name == ref.finding_type
        points = np.array(ref.geometry["shapes"][0]["points"], dtype=float)
        if name == "microaneurysm":
            x, y = points[0]
            assert ann["keypoints"] == [x, y, 2] and ann["num_keypoints"] == 1
            assert ann["bbox"] == [x - 4, y - 4, 8, 8] and ann["segmentation"] == []
        else:
            lo, hi = points.min(axis=0), points.max(axis=0)
            assert ann["bbox"] == pytest.approx([*lo, *(hi - lo)], abs=0.01), name
            assert len(ann["segmentation"][0]) >= 8
    disc = next(a for a in anns if api.loadCats(a["category_id"])[0]["name"] == "optic_disc")
    mask = api.annToMask(disc)
    assert mask.shape == (SIZE, SIZE) and abs(mask.sum() - disc["area"]) < 0.1 * disc["area"]
    # the readers' own marks, as drawn
    reads = sorted((root / "annotations/coco/reads").glob("*.json"))
    assert len(reads) == 9
    one = coco_api.COCO(str(reads[0]))
    assert one.dataset["info"]["contributor"]
    by_cat = {one.loadCats(a["category_id"])[0]["name"]: a for a in one.loadAnns(one.getAnnIds())}
    assert sorted(by_cat) == ["haemorrhage", "microaneurysm", "optic_cup", "optic_disc"]
    assert by_cat["microaneurysm"]["keypoints"] == [40.5, 200.25, 2]
    assert by_cat["microaneurysm"]["bbox"] == [36.5, 196.25, 8, 8]
    assert by_cat["haemorrhage"]["bbox"] == [180, 30, 30, 22]
    assert by_cat["haemorrhage"]["area"] == 660.0
    assert by_cat["optic_disc"]["bbox"] == [70, 60, 100, 100]
    assert by_cat["optic_disc"]["area"] == 5000.0
    assert by_cat["optic_cup"]["bbox"] == pytest.approx([110, 90, 40, 60], abs=0.1)


def test_every_dicom_object_passes_dciodvfy(package):
    _, root, _, _, _, _ = package
    objects = sorted(root.glob("images/**/*.dcm")) + sorted(root.glob("annotations/dicom/**/*.dcm"))
    assert len(list(root.glob("images/**/*.dcm"))) == 3
    for path in objects:
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [
            ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("Error")
        ]
        assert errors == [], (path.relative_to(root).as_posix(), errors)


def test_exporting_twice_gives_the_same_bytes_and_tampering_is_caught(package, tmp_path):
    inp, root, _, _, _, _ = package
    again = write_package(inp, tmp_path / "again")
    assert (root / "MANIFEST.sha256").read_bytes() == (again / "MANIFEST.sha256").read_bytes()
    # a photograph with a text chunk added, or a JPEG with its pixels changed, is caught
    png = next(again.glob("photos/*/*.png"))
    with Image.open(png) as im:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "added")
        im.save(png, "PNG", pnginfo=info)
    jpg = next(again.glob("photos/*/*.jpg"))
    noisy = np.asarray(Image.open(jpg)).copy()
    noisy[::2] = 255 - noisy[::2]
    Image.fromarray(noisy).save(jpg, "JPEG", quality=95)
    problems = verify_photos(again)
    assert any(png.name in p and "PNG text Comment" in p for p in problems), problems
    assert any(jpg.name in p and "PSNR" in p for p in problems), problems
    assert any(jpg.name in p and "JPEG segment FFE0" in p for p in problems), problems
    assert any(png.name in p and "sha256 differs" in p for p in verify(again))


def test_the_export_page_builds_the_fundus_package(fundus_version, client, manager, tmp_path):
    version = fundus_version[0]
    assert client.login(username=manager.username, password=PASSWORD)
    url = f"/projects/{version.project.slug}/versions/{version.version}/export/"
    with TestCase.captureOnCommitCallbacks(execute=False):
        response = client.post(url, {"format": "nifdc"})
    assert response.status_code == 302, response.content
    job = Job.objects.filter(kind="datasets.export").latest("pk")
    assert jobs.execute(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, (job.error, job.log)
    link = f"/projects/{version.project.slug}/versions/{version.version}/exports/{job.pk}/download/"
    response = client.get(link)
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    out = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        names = zf.namelist()
        zf.extractall(out)
    (root,) = list(out.iterdir())
    assert verify(root) == []
    cases = _rows(root / "tables/cases.csv")  # the sequestered split is not in it
    assert 1 <= len(cases) <= 3
    assert len([n for n in names if "/photos/" in n]) == len(cases)
    grades = _rows(root / "annotations/fundus_grades.csv")
    assert sorted(r["case_id"] for r in grades) == sorted(r["case_id"] for r in cases)


def test_a_photograph_versions_reference_goes_out_as_photo_seg_and_sr(fundus_version):
    """The write-back outbox sends a fundus version's reference with the SEG made
    on the photographs (export.fundus_seg), not the CT one, and every object
    references the version's own OP images."""
    from annotation_server.outbox.build import reference_objects

    version, _by_format, _truths, _phi, _arbitration = fundus_version
    inp = build_package_input(version)
    case_ids = dict(version.cases.values_list("case_code", "case_id"))
    objects = reference_objects(inp, case_ids)
    segs = [o for o in objects if o.carries == "reference_seg"]
    assert len(segs) == 3  # each photograph's reference has disc, cup and a box
    photos = {i.sop_instance_uid for _c, s in inp.series() for i in s.instances}
    for built in segs:
        ds = pydicom.dcmread(io.BytesIO(built.data))
        assert ds.Modality == "SEG"
        referenced = {
            r.ReferencedSOPInstanceUID
            for s in ds.ReferencedSeriesSequence
            for r in s.ReferencedInstanceSequence
        }
        assert referenced and referenced <= photos
        assert built.case_id in set(case_ids.values())
