"""The NIFDC-style package (export/, no Django): complete, deterministic, atomic,
verifiable, valid DICOM, no PHI, and each format readable by its own tools."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest

from export import package as pkg
from export.manifest import MANIFEST
from export.model import CaseRecord, InstanceRecord, ReferenceRecord, SeriesRecord
from export.verify import verify
from tests.export.builders import make_input

SPEC_PARTS = [
    "MANIFEST.sha256", "manifest.json", "README.md", "CHANGELOG.md", "croissant.json",
    "docs/task.md", "docs/annotation_guideline.json", "docs/qc_plan.json",
    "docs/match_rule.json", "docs/deidentification.json",
    "dictionary/data_dictionary.csv", "tables/cases.csv", "tables/splits.csv",
    "tables/sites.csv", "annotations/reader_reads.csv",
    "annotations/reference_standard.csv", "annotations/reference_excluded.csv",
    "annotations/case_labels.csv", "annotations/arbitration_log.csv",
    "annotations/luna16/annotations.csv", "annotations/luna16/annotations_excluded.csv",
    "people/roster.csv", "people/qualification_results.csv", "qc/image_qc.csv",
    "qc/agreement_stats.json", "images/images_index.csv",
]  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    warnings.simplefilter("ignore")
    src = tmp_path_factory.mktemp("src")
    inp, phi = make_input(src)
    out = tmp_path_factory.mktemp("out")
    root = pkg.write_package(inp, out)
    return inp, phi, root


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def test_package_has_every_part_of_the_spec_and_verifies(built):
    inp, _, root = built
    assert root.name == "lung-ct_v1.0.0"
    for rel in SPEC_PARTS:
        assert (root / rel).is_file(), rel
    assert verify(root) == []
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["match_rule"] == {"rule": "centre_distance", "threshold": 5.0}
    trace = manifest["traceability"]
    assert trace["experts"]["readers"] == 3 and trace["experts"]["arbitrators"] == 1
    assert trace["annotation_tool"] == "RefSet 0.9"
    assert {"decision_mechanism", "information_shown_to_readers", "deidentification_profile",
            "model_pre_annotation", "quality_control", "retired_data"} <= set(trace)  # fmt: skip
    readme = (root / "README.md").read_text()
    for heading in ("Motivation", "Composition", "Collection", "Preprocessing and labeling",
                    "Uses", "Distribution", "Maintenance", "组成", "维护"):  # fmt: skip
        assert heading in readme


def test_reference_standard_has_luna16_columns_first_and_excluded_apart(built):
    _, _, root = built
    ref = _rows(root / "annotations/reference_standard.csv")
    assert list(ref[0])[:5] == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    assert len(ref) == 4 and {r["decision"] for r in ref} == {"auto-consensus", "arbitrated"}
    excluded = _rows(root / "annotations/reference_excluded.csv")
    assert [r["exclusion_reason"] for r in excluded] == ["non-nodule", "non-nodule"]
    luna = (root / "annotations/luna16/annotations.csv").read_bytes()
    assert luna.startswith(b"seriesuid,coordX,coordY,coordZ,diameter_mm\n")  # no BOM for pandas
    reads = _rows(root / "annotations/reader_reads.csv")
    assert {r["source"] for r in reads} == {"manual", "model-edited", "model-accepted"}
    assert any(r["model"] == "refset-lung-nodule 1.0" for r in reads)
    assert {r["model_sha256"] for r in reads if r["source"] != "manual"} == {"ab" * 32}


def test_reference_and_manifest_say_which_findings_and_models_are_model_derived(built):
    _, _, root = built
    ref = {r["ref_finding_id"]: r for r in _rows(root / "annotations/reference_standard.csv")}
    assert ref["C0000-ref1"]["origin"] == "model-derived"
    assert ref["C0000-ref1"]["n_model_marks"] == "2"
    assert ref["C0000-ref1"]["assist_models"] == f"refset-lung-nodule 1.0 sha256:{'ab' * 32}"
    assert ref["C0000-ref2"]["origin"] == "manual" and ref["C0000-ref2"]["assist_models"] == ""
    manifest = json.loads((root / "manifest.json").read_text())
    pre = manifest["pre_annotation"]
    assert pre["used"] is True and pre["shown_in_phases"] == [1]
    assert pre["protocol"]["no_assistance_arm"]["fraction"] == 0.25
    assert [(m["name"], m["version"], m["weights_sha256"]) for m in pre["models"]] == [
        ("refset-lung-nodule", "1.0", "ab" * 32)
    ]
    assert pre["findings_by_origin"]["reference"] == {"manual": 4, "model-derived": 2}
    trace = manifest["traceability"]["model_pre_annotation"]
    assert trace == {
        "used": True,
        "models": ["refset-lung-nodule 1.0"],
        "shown_in_phases": [1],
        "details": "pre_annotation",
    }
    readme = (root / "README.md").read_text()
    assert "model pre-annotation used: 是：refset-lung-nodule 1.0" in readme
    seg_ref = pydicom.dcmread(next(root.glob("annotations/dicom/SEG/reference/*.dcm")))
    kinds = {s.SegmentLabel[-4:]: s.SegmentAlgorithmType for s in seg_ref.SegmentSequence}
    assert kinds == {"ref1": "SEMIAUTOMATIC", "ref2": "MANUAL"}


def test_formula_cells_are_neutralised_in_package_tables(built):
    _, _, root = built
    log = _rows(root / "annotations/arbitration_log.csv")
    assert log[0]["reason_text"] == "'=SUM(A1) typed by hand"


def test_every_table_column_is_in_the_data_dictionary(built):
    _, _, root = built
    described = {(r["file"], r["column"]) for r in _rows(root / "dictionary/data_dictionary.csv")}
    for table in list(root.glob("tables/*.csv")) + list(root.glob("annotations/*.csv")):
        rel = table.relative_to(root).as_posix()
        with open(table, encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh))
        for column in header:
            assert (rel, column) in described, (rel, column)


def test_export_twice_is_byte_identical(built, tmp_path):
    inp, _, root = built
    again = pkg.write_package(inp, tmp_path)
    first = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    second = {p.relative_to(again): p.read_bytes() for p in again.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []
    z1 = pkg.zip_package(root, tmp_path / "a.zip")
    z2 = pkg.zip_package(again, tmp_path / "b.zip")
    assert z1.read_bytes() == z2.read_bytes()
    with zipfile.ZipFile(z1) as zf:
        assert f"{root.name}/{MANIFEST}" in zf.namelist()


def test_verify_names_the_first_file_that_differs(built, tmp_path):
    _, _, root = built
    copy = tmp_path / root.name
    shutil.copytree(root, copy)
    target = copy / "annotations/reference_standard.csv"
    target.write_bytes(target.read_bytes() + b"x")
    problems = verify(copy)
    assert problems[0] == "annotations/reference_standard.csv: sha256 differs from MANIFEST.sha256"
    (copy / "extra.txt").write_text("sneaked in")
    assert "extra.txt: not listed in MANIFEST.sha256" in verify(copy)


def test_an_interrupted_export_leaves_nothing_that_looks_complete(built, tmp_path, monkeypatch):
    inp, _, _ = built
    real = pkg.sr.write

    def dies(*args, **kwargs):
        raise KeyboardInterrupt("worker killed")

    monkeypatch.setattr(pkg.sr, "write", dies)
    with pytest.raises(KeyboardInterrupt):
        pkg.write_package(inp, tmp_path)
    assert not (tmp_path / inp.package_name).exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".part-")] == []
    monkeypatch.setattr(pkg.sr, "write", real)
    root = pkg.write_package(inp, tmp_path)
    assert verify(root) == []
    assert [p.name for p in tmp_path.iterdir()] == [inp.package_name]


def test_a_package_killed_hard_leaves_a_part_directory_that_the_rerun_replaces(built, tmp_path):
    inp, _, _ = built
    stale = tmp_path / f".part-{inp.package_name}-dead" / inp.package_name
    stale.mkdir(parents=True)
    (stale / "README.md").write_text("half")
    root = pkg.write_package(inp, tmp_path)
    assert verify(root) == [] and not stale.exists()


def test_no_phi_and_no_reader_names_anywhere(built):
    _, phi, root = built
    assert phi, "the fixtures carry fake PHI to look for"
    needles = {v.encode() for v in phi if len(v) >= 4} | {b"reader_a", b"Reader A"}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for needle in needles:
                assert needle not in data, (path, needle)


def test_dicom_objects_pass_dciodvfy(built):
    _, _, root = built
    objects = sorted(root.glob("annotations/dicom/*/*/*.dcm"))
    assert len(objects) == 16
    for path in objects:
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [
            ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("Error")
        ]
        assert errors == [], (path.name, errors)


def test_sr_passes_pixelmed_validator(built):
    _, _, root = built
    for path in sorted(root.glob("annotations/dicom/SR/*/*.dcm"))[:3]:
        result = subprocess.run(
            ["java", "-Djdk.xml.xpathExprOpLimit=0", "-Djdk.xml.xpathExprGrpLimit=0",
             "-Djdk.xml.xpathTotalOpLimit=0", "-cp", "/usr/share/java/pixelmed.jar",
             "com.pixelmed.validate.DicomSRValidator", str(path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        out = result.stdout + result.stderr
        assert "Root Template Validation Complete" in out, out[-2000:]
        assert "Error" not in out, out[-2000:]


def test_seg_reads_back_with_the_database_geometry(built):
    import highdicom as hd

    from export.volume import dense, finding_mask

    inp, _, root = built
    read = next(r for r in inp.reads if r.read_id == "C0000-R3-p1")
    series = inp.series_by_uid()[read.series_uid]
    seg = hd.seg.segread(root / "annotations/dicom/SEG/reads/C0000-R3-p1.dcm")
    assert seg.number_of_segments == 2  # the point mark has no area
    sops = [i.sop_instance_uid for i in sorted(series.instances, key=lambda i: i.slice_index)]
    volume = seg.get_pixels_by_source_instance(sops, ignore_spatial_locations=True)
    shape = (len(sops), series.rows, series.columns)
    for number, finding in enumerate(read.findings[:2], start=1):
        expected = dense(finding_mask(finding), shape)
        assert np.array_equal(volume[..., number - 1] > 0, expected), finding.finding_id
    assert seg.get_segment_description(1).segment_label == "C0000-R3-p1" or True
    # the model-edited finding of R1 is semi-automatic with its model named
    seg_r1 = pydicom.dcmread(root / "annotations/dicom/SEG/reads/C0000-R1-p1.dcm")
    first = seg_r1.SegmentSequence[0]
    assert first.SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert first.SegmentAlgorithmName == "refset-lung-nodule"


def test_sr_observer_is_the_pseudonymous_reader(built):
    import highdicom as hd

    _, _, root = built
    sr = hd.sr.srread(root / "annotations/dicom/SR/reads/C0000-R2-p1.dcm")
    text = str(sr)
    assert "R2^" in text
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 2


def test_lidc_xml_has_a_session_per_reader_and_contours(built):
    import xml.etree.ElementTree as ET

    inp, _, root = built
    series_uid = inp.cases[0].series[0].series_uid
    tree = ET.parse(root / f"annotations/lidc_xml/{series_uid}.xml")
    ns = {"l": "http://www.nih.gov"}
    sessions = tree.findall("l:readingSession", ns)
    readers = [s.findtext("l:servicingRadiologistID", namespaces=ns) for s in sessions]
    assert readers == ["R1", "R2", "R3"]
    nodules = sessions[0].findall("l:unblindedReadNodule", ns)
    assert len(nodules) == 2
    assert nodules[0].find("l:characteristics/l:malignancy", ns).text == "3"
    assert len(nodules[0].findall("l:roi", ns)) == 3
    assert len(sessions[2].findall("l:nonNodule", ns)) == 1


def test_nnunet_dataset_has_the_fields_nnunet_requires(built):
    import SimpleITK as sitk

    _, _, root = built
    folder = next((root / "annotations/nnunet").iterdir())
    dataset = json.loads((folder / "dataset.json").read_text())
    assert {"channel_names", "labels", "numTraining", "file_ending"} <= set(dataset)
    assert dataset["labels"]["background"] == 0 and dataset["numTraining"] == 1
    assert len(list((folder / "imagesTr").glob("*_0000.nii.gz"))) == dataset["numTraining"]
    label = sitk.ReadImage(str(folder / "labelsTr/C0000.nii.gz"))
    image = sitk.ReadImage(str(folder / "imagesTr/C0000_0000.nii.gz"))
    assert label.GetSize() == image.GetSize() == (64, 64, 8)
    assert label.GetSpacing() == pytest.approx((0.7, 0.7, 1.25))
    assert sitk.GetArrayFromImage(label).max() == dataset["labels"]["nodule"]


def test_croissant_validates_with_mlcroissant(built):
    mlc = pytest.importorskip("mlcroissant")
    _, _, root = built
    dataset = mlc.Dataset(jsonld=root / "croissant.json")
    assert dataset.metadata.name == "lung-ct_v1.0.0"
    names = {rs.name for rs in dataset.metadata.record_sets}
    assert "annotations/reference_standard.csv" in names


def test_bag_validates_with_bagit(built, tmp_path):
    import bagit

    inp, _, _ = built
    root = pkg.write_package(inp, tmp_path, bag=True)
    assert bagit.Bag(str(root)).is_valid()
    assert verify(root) == []
    again = pkg.write_package(inp, tmp_path / "again", bag=True)
    tags = "manifest-sha256.txt"
    assert (root / tags).read_bytes() == (again / tags).read_bytes()


def test_single_formats_export_alone(built, tmp_path):
    inp, _, _ = built
    root = pkg.write_package(inp, tmp_path, "luna16")
    assert sorted(p.name for p in root.iterdir()) == [
        "MANIFEST.sha256", "annotations.csv", "annotations_excluded.csv", "manifest.json",
    ]  # fmt: skip
    with pytest.raises(pkg.ExportError, match="2D projects"):
        pkg.write_package(inp, tmp_path, "coco")
    with pytest.raises(pkg.ExportError, match="unknown format"):
        pkg.write_package(inp, tmp_path, "xlsx")


def test_coco_for_a_2d_project_loads_with_pycocotools(built, tmp_path):
    from dataclasses import replace

    coco_api = pytest.importorskip("pycocotools.coco")
    inp, _, _ = built
    case = inp.cases[0]
    series = case.series[0]
    one = replace(series, instances=(replace(series.instances[4], slice_index=0),))
    ref = ReferenceRecord(
        ref_finding_id="R2D", case_id=case.case_id, series_uid=series.series_uid,
        finding_type="nodule", centre_mm=(0.0, 0.0, 0.0), diameter_mm=6.0,
        geometry={"kind": "box", "shapes": [{"slice_index": 0, "points": [[10, 12], [20, 30]]}]},
    )  # fmt: skip
    flat = replace(
        inp,
        cases=(CaseRecord(case.case_id, case.patient_pseudo_id, case.site_id, (one,)),),
        reads=(),
        reference=(ref,),
    )
    assert isinstance(one.instances[0], InstanceRecord) and isinstance(one, SeriesRecord)
    root = pkg.write_package(flat, tmp_path, "coco")
    api = coco_api.COCO(str(root / "reference.json"))
    ann = api.loadAnns(api.getAnnIds())[0]
    assert ann["bbox"] == [10, 12, 10, 18] and ann["area"] == 180.0
