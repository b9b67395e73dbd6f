"""A version whose reference rests on model proposals exports what it owes
(issue 16): reader_a accepted a proposal, reader_b edited it, reader_c drew the
nodule by hand and rejected a second proposal; settled, frozen and exported,
the package's SEG names the model on the model-derived segments, its SR carries
TID 4019 Algorithm Identification on their measurement groups, and manifest.json
says whether, where and which model pre-annotated, phase by phase, with the
no-assistance arm."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import pydicom
import pytest
from django.core.management import call_command

import fixtures
from annotation_server.adjudication import services as adjudication
from annotation_server.datasets import services
from annotation_server.imaging.services import index_datasets
from annotation_server.projects import arms
from annotation_server.projects.models import Case
from annotation_server.quality.models import QcReport
from annotation_server.reading import assist
from annotation_server.reading.models import AssistModelVersion, Proposal
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse, submit_all
from tests.datasets.conftest import LABELS, make_case

pytestmark = pytest.mark.django_db

SHA = "5e" * 32
ALGORITHM_NAME = "111001"  # DCM "Algorithm Name" (TID 4019)


def _series(project, seed: int):
    datasets, _ = fixtures.build_ct_datasets(slices=6, seed=seed, matrix=64)
    return index_datasets(project, datasets).series[0]


def _propose(case, row, geometry) -> Proposal:
    return Proposal.objects.create(
        case=case,
        series=case.series,
        model_version=row,
        finding_type="nodule",
        geometry=geometry,
        centre_x_mm=geometry["centre_mm"][0],
        centre_y_mm=geometry["centre_mm"][1],
        centre_z_mm=geometry["centre_mm"][2],
        attributes=factories.complete_nodule_attributes(),
        score=0.9,
        threshold=0.3,
    )


def _seed_splitting(first: int, second: int) -> int:
    """A seed that puts `first` in the assisted arm and `second` in the other (at 0.5)."""
    return next(
        s
        for s in range(1000)
        if not arms.unassisted(first, 0.5, s) and arms.unassisted(second, 0.5, s)
    )


@pytest.fixture
def package(project, protocol, readers, manager, tmp_path):
    reader_a, reader_b, reader_c = readers
    row = AssistModelVersion.objects.create(
        name="test-model",
        version="1.0",
        task="detection",
        card={"name": "test-model"},
        weights_sha256=SHA,
        source=AssistModelVersion.Source.PLUGIN,
    )
    assisted = Case.objects.create(
        project=project,
        code="E00",
        series=_series(project, 500),
        state="reading",
        qc_status="pass",
    )
    QcReport.objects.create(
        case=assisted, status="pass", profile={}, results=[{"rule": "slices", "status": "pass"}]
    )
    plain = make_case(
        project,
        readers,
        "E01",
        patient="",
        series=_series(project, 501),
        settle=False,
        finding_at=(30, 30, [2, 3]),
    )
    protocol.prelabel_visibility = "shown"
    protocol.unassisted_fraction = 0.5
    protocol.unassisted_seed = _seed_splitting(assisted.pk, plain.pk)
    protocol.save()
    proposal = _propose(assisted, row, ellipse(30, 30, [2, 3]))
    far = _propose(assisted, row, ellipse(50, 12, [4]))
    _propose(plain, row, ellipse(30, 30, [2, 3]))  # the model ran; the arm hid it
    tasks = {
        name: factories.TaskFactory(case=assisted, reader=reader)
        for name, reader in zip(("a", "b", "c"), readers, strict=True)
    }
    assist.accept(tasks["a"], proposal.pk, reader_a)
    assist.accept_edited(tasks["b"], proposal.pk, reader_b, geometry=ellipse(31, 30, [2, 3]))
    add_finding(tasks["c"], ellipse(32, 30, [2, 3]))
    assist.reject(tasks["c"], far.pk, reader_c)
    submit_all(tasks, dict.fromkeys(tasks, LABELS))
    for case in (assisted, plain):
        adjudication.settle_case(case.pk)
        case.refresh_from_db()
        assert case.state == Case.State.ADJUDICATED, case.state
    draft = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    services.freeze(draft, by=manager)
    call_command(
        "export_dataset",
        "--project",
        project.slug,
        "--version",
        "1.0.0",
        "--out",
        str(tmp_path / "out"),
        "--include-sequestered",
        stdout=io.StringIO(),
    )
    root = tmp_path / "out" / f"{project.slug}_v1.0.0"
    return root, {"E00": assisted.series.series_uid, "E01": plain.series.series_uid}


def _rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def _dciodvfy_errors(path) -> list[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("Error")]


def _groups_with_algorithm(ds) -> list[list[str]]:
    """Per measurement group: the Algorithm Name items directly on it."""
    out = []

    def walk(node):
        for child in getattr(node, "ContentSequence", []):
            if child.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group":
                out.append(
                    [
                        c.TextValue
                        for c in child.ContentSequence
                        if c.ConceptNameCodeSequence[0].CodeValue == ALGORITHM_NAME
                    ]
                )
            else:
                walk(child)

    walk(ds)
    return out


def test_dicom_names_the_model_on_model_derived_segments_and_measurement_groups(package):
    root, series = package
    # the reference: SEG segment SEMIAUTOMATIC with the model identified, manual MANUAL
    seg_dir = root / "annotations" / "dicom" / "SEG" / "reference"
    derived = pydicom.dcmread(seg_dir / f"{series['E00']}.dcm")
    (segment,) = derived.SegmentSequence
    assert segment.SegmentAlgorithmType == "SEMIAUTOMATIC"
    (ident,) = segment.SegmentationAlgorithmIdentificationSequence
    assert (ident.AlgorithmName, ident.AlgorithmVersion) == ("test-model", "1.0")
    assert ident.AlgorithmFamilyCodeSequence[0].CodeMeaning == "Artificial Intelligence"
    assert ident.AlgorithmParameters == f"weights_sha256={SHA}"
    manual = pydicom.dcmread(seg_dir / f"{series['E01']}.dcm")
    assert {s.SegmentAlgorithmType for s in manual.SegmentSequence} == {"MANUAL"}
    # its SR: TID 4019 on the model-derived measurement group only
    sr_dir = root / "annotations" / "dicom" / "SR" / "reference"
    assert _groups_with_algorithm(pydicom.dcmread(sr_dir / f"{series['E00']}.dcm")) == [
        ["test-model"]
    ]
    assert _groups_with_algorithm(pydicom.dcmread(sr_dir / f"{series['E01']}.dcm")) == [[]]
    for folder in (seg_dir, sr_dir):
        for path in sorted(folder.glob("*.dcm")):
            assert _dciodvfy_errors(path) == [], path.name
    # each read keeps its reader's origin
    rows = [r for r in _rows(root / "annotations/reader_reads.csv") if r["case_id"] == "E00"]
    kinds = {}
    for row in rows:
        ds = pydicom.dcmread(root / f"annotations/dicom/SEG/reads/{row['read_id']}.dcm")
        kinds[row["source"]] = ds.SegmentSequence[0].SegmentAlgorithmType
    assert kinds == {
        "model-accepted": "SEMIAUTOMATIC",
        "model-edited": "SEMIAUTOMATIC",
        "manual": "MANUAL",
    }
    model_rows = [r for r in rows if r["source"] != "manual"]
    assert {(r["model"], r["model_sha256"]) for r in model_rows} == {("test-model 1.0", SHA)}


def test_reference_table_and_manifest_state_the_pre_annotation(package):
    root, _ = package
    ref = {r["case_id"]: r for r in _rows(root / "annotations/reference_standard.csv")}
    assert ref["E00"]["origin"] == "model-derived" and ref["E00"]["n_model_marks"] == "2"
    assert ref["E00"]["assist_models"] == f"test-model 1.0 sha256:{SHA}"
    assert ref["E01"]["origin"] == "manual" and ref["E01"]["assist_models"] == ""
    pre = json.loads((root / "manifest.json").read_text())["pre_annotation"]
    assert pre["used"] is True
    assert pre["shown_in_phases"] == [1]
    arm = pre["protocol"]["no_assistance_arm"]
    assert (arm["fraction"], arm["cases"], arm["case_ids"]) == (0.5, 1, ["E01"])
    assert pre["findings_by_origin"] == {
        "reader_findings": {"manual": 4, "model-accepted": 1, "model-edited": 1},
        "reference": {"manual": 1, "model-derived": 1},
    }
    (model,) = pre["models"]
    assert (model["name"], model["version"], model["weights_sha256"]) == (
        "test-model",
        "1.0",
        SHA,
    )
    assert model["task"] == "detection"
    assert (model["proposals"], model["cases_with_proposals"]) == (3, 2)
    assert model["dispositions"] == {"accepted": 1, "edited": 1, "rejected": 1}
    assert model["reader_findings"] == {"model-accepted": 1, "model-edited": 1}
    assert model["reference_findings"] == 1
