"""Model pre-annotation in the package (export/, no Django): model-derived
findings are SEMIAUTOMATIC segments naming their models, their SR measurement
groups carry TID 4019 Algorithm Identification, manual ones carry neither, and
manifest.json says whether, where and which models pre-annotated."""

from __future__ import annotations

import subprocess
import warnings
from dataclasses import replace

import pydicom
import pytest

from export import seg, sr
from export.model import AssistModelRef, PackageInput, PreAnnotation
from export.provenance import pre_annotation, shown_in_phases
from tests.export.builders import MODEL, make_input

ALGORITHM_NAME = "111001"  # DCM "Algorithm Name" (TID 4019)
ALGORITHM_VERSION = "111003"
ALGORITHM_PARAMETERS = "111002"
ALGORITHM_FAMILY = "111000"
OTHER = AssistModelRef("plug-in-net", "2.1", "cd" * 32)
BOTH = tuple(sorted((MODEL, OTHER)))  # a ReferenceRecord's models are sorted


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> PackageInput:
    warnings.simplefilter("ignore")
    inp, _ = make_input(tmp_path_factory.mktemp("src"), cases=1)
    return inp


def _read(inp: PackageInput, reader: str):
    return next(r for r in inp.reads if r.reader_pseudo_id == reader)


def _series(inp: PackageInput):
    return inp.cases[0].series[0]


def _segments(ds) -> dict[str, pydicom.Dataset]:
    return {s.SegmentLabel: s for s in ds.SegmentSequence}


def _algorithm_items(ds) -> dict[str, list[dict[str, list[str]]]]:
    """Per measurement group (by tracking identifier): the TID 4019 items found
    directly on the group and on each of its measurements."""
    out: dict[str, list[dict[str, list[str]]]] = {}

    def items(node) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for child in getattr(node, "ContentSequence", []):
            code = child.ConceptNameCodeSequence[0].CodeValue
            if code in (ALGORITHM_NAME, ALGORITHM_VERSION, ALGORITHM_PARAMETERS):
                found.setdefault(code, []).append(child.TextValue)
            elif code == ALGORITHM_FAMILY:
                found.setdefault(code, []).append(child.ConceptCodeSequence[0].CodeMeaning)
        return found

    def walk(node) -> None:
        for child in getattr(node, "ContentSequence", []):
            if child.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group":
                tracking = next(
                    c.TextValue
                    for c in child.ContentSequence
                    if c.ConceptNameCodeSequence[0].CodeMeaning == "Tracking Identifier"
                )
                out[tracking] = [items(child)] + [
                    items(m) for m in child.ContentSequence if m.ValueType == "NUM"
                ]
            else:
                walk(child)

    walk(ds)
    return out


def _dciodvfy_errors(path) -> list[str]:
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("Error")]


def _pixelmed(path) -> str:
    result = subprocess.run(
        ["java", "-Djdk.xml.xpathExprOpLimit=0", "-Djdk.xml.xpathExprGrpLimit=0",
         "-Djdk.xml.xpathTotalOpLimit=0", "-cp", "/usr/share/java/pixelmed.jar",
         "com.pixelmed.validate.DicomSRValidator", str(path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.stdout + result.stderr


def test_accepted_and_edited_findings_are_semiautomatic_segments_naming_the_model(case):
    for reader in ("R1", "R2"):  # R1 edited the proposal, R2 accepted it as it was
        read = _read(case, reader)
        segments = _segments(seg.for_read(case, read, _series(case)))
        model_derived = segments[f"C0000-{reader}-f1"]
        assert model_derived.SegmentAlgorithmType == "SEMIAUTOMATIC"
        assert model_derived.SegmentAlgorithmName == "refset-lung-nodule"
        (ident,) = model_derived.SegmentationAlgorithmIdentificationSequence
        assert ident.AlgorithmName == "refset-lung-nodule" and ident.AlgorithmVersion == "1.0"
        family = ident.AlgorithmFamilyCodeSequence[0]
        assert (family.CodeValue, family.CodingSchemeDesignator) == ("123110", "DCM")
        assert family.CodeMeaning == "Artificial Intelligence"
        assert ident.AlgorithmParameters == f"weights_sha256={MODEL.weights_sha256}"
        manual = segments[f"C0000-{reader}-f2"]
        assert manual.SegmentAlgorithmType == "MANUAL"
        assert "SegmentationAlgorithmIdentificationSequence" not in manual


def test_a_manual_read_has_only_manual_segments(case):
    segments = _segments(seg.for_read(case, _read(case, "R3"), _series(case)))
    assert {s.SegmentAlgorithmType for s in segments.values()} == {"MANUAL"}


def test_a_model_derived_reference_segment_names_every_model_behind_it(case, tmp_path):
    series = _series(case)
    refs = [r for r in case.reference if not r.excluded]
    two = replace(refs[0], models=BOTH, model_marks=3)
    ds = seg.for_reference(case, series, [two, refs[1]])
    segments = _segments(ds)
    derived = segments["C0000-ref1"]
    assert derived.SegmentAlgorithmType == "SEMIAUTOMATIC"
    idents = derived.SegmentationAlgorithmIdentificationSequence
    assert [(i.AlgorithmName, i.AlgorithmVersion) for i in idents] == [
        ("plug-in-net", "2.1"),
        ("refset-lung-nodule", "1.0"),
    ]
    assert idents[0].AlgorithmParameters == f"weights_sha256={OTHER.weights_sha256}"
    assert segments["C0000-ref2"].SegmentAlgorithmType == "MANUAL"
    path = tmp_path / "reference.dcm"
    ds.save_as(path)
    assert _dciodvfy_errors(path) == []


def test_sr_groups_of_model_derived_findings_carry_algorithm_identification(case, tmp_path):
    read = _read(case, "R1")
    ds = sr.for_read(case, read, _series(case))
    groups = _algorithm_items(ds)
    derived = groups["nodule C0000-R1-f1"]
    group_items, *measurement_items = derived
    assert group_items[ALGORITHM_NAME] == ["refset-lung-nodule"]
    assert group_items[ALGORITHM_VERSION] == ["1.0"]
    assert group_items[ALGORITHM_FAMILY] == ["Artificial Intelligence"]
    assert group_items[ALGORITHM_PARAMETERS] == [f"weights_sha256={MODEL.weights_sha256}"]
    # long axis, short axis, volume, mean and max HU, each naming the model
    assert len(measurement_items) == 5
    assert all(m[ALGORITHM_NAME] == ["refset-lung-nodule"] for m in measurement_items)
    assert all(items == {} for items in groups["nodule C0000-R1-f2"])  # manual: none
    path = tmp_path / "read.dcm"
    ds.save_as(path)
    assert _dciodvfy_errors(path) == []
    out = _pixelmed(path)
    assert "Root Template Validation Complete" in out and "Error" not in out, out[-2000:]


def test_reference_sr_lists_every_model_as_parameters(case, tmp_path):
    refs = [r for r in case.reference if not r.excluded]
    two = replace(refs[0], models=BOTH, model_marks=3)
    ds = sr.for_reference(case, _series(case), [two, refs[1]])
    groups = _algorithm_items(ds)
    group_items = groups["nodule C0000-ref1"][0]
    assert group_items[ALGORITHM_NAME] == [OTHER.name]  # TID 1410 takes one: the first
    assert group_items[ALGORITHM_PARAMETERS] == [
        f"model=plug-in-net 2.1 weights_sha256={OTHER.weights_sha256}",
        f"model=refset-lung-nodule 1.0 weights_sha256={MODEL.weights_sha256}",
    ]
    assert all(items == {} for items in groups["nodule C0000-ref2"])
    path = tmp_path / "reference-sr.dcm"
    ds.save_as(path)
    assert _dciodvfy_errors(path) == []
    out = _pixelmed(path)
    assert "Root Template Validation Complete" in out and "Error" not in out, out[-2000:]


def test_pre_annotation_block_counts_origins_and_names_models(case):
    block = pre_annotation(case)
    assert block["used"] is True
    assert block["shown_in_phases"] == [1]
    assert block["protocol"]["visibility"] == "shown"
    assert block["protocol"]["min_confidence"] == 0.3
    assert block["protocol"]["no_assistance_arm"] == {
        "fraction": 0.25,
        "seed": 7,
        "cases": 0,
        "case_ids": [],
    }
    assert block["findings_by_origin"] == {
        "reader_findings": {"manual": 5, "model-accepted": 1, "model-edited": 1},
        "reference": {"manual": 2, "model-derived": 1},
    }
    (model,) = block["models"]
    assert model["name"] == "refset-lung-nodule" and model["version"] == "1.0"
    assert model["weights_sha256"] == MODEL.weights_sha256
    assert model["reader_findings"] == {"model-accepted": 1, "model-edited": 1}
    assert model["reference_findings"] == 1
    assert model["proposals"] == 2
    assert model["dispositions"] == {"accepted": 1, "edited": 1, "rejected": 1}
    assert "reference_standard.csv" in block["where"]["reference_findings"]


def test_a_version_without_model_output_says_it_was_not_used(case):
    manual_reads = tuple(
        replace(
            r,
            findings=tuple(
                replace(f, source="manual", model_name="", model_version="", model_sha256="")
                for f in r.findings
            ),
        )
        for r in case.reads
    )
    manual_refs = tuple(
        replace(r, origin="manual", models=(), model_marks=0) for r in case.reference
    )
    plain = replace(
        case,
        reads=manual_reads,
        reference=manual_refs,
        pre_annotation=PreAnnotation(),
        protocol={**case.protocol, "prelabel_visibility": "hidden"},
    )
    block = pre_annotation(plain)
    assert block["used"] is False and block["models"] == [] and block["shown_in_phases"] == []
    assert block["protocol"]["no_assistance_arm"]["cases"] is None  # not known: not stated
    segments = _segments(seg.for_read(plain, _read(plain, "R1"), _series(plain)))
    assert {s.SegmentAlgorithmType for s in segments.values()} == {"MANUAL"}


def test_a_rejected_proposal_still_counts_as_pre_annotation_used(case):
    manual_reads = tuple(
        replace(r, findings=tuple(replace(f, source="manual") for f in r.findings))
        for r in case.reads
    )
    manual_refs = tuple(replace(r, origin="manual", models=()) for r in case.reference)
    (offered,) = case.pre_annotation.models
    only_rejected = replace(offered, accepted=0, edited=0, rejected=1)
    hidden = {**case.protocol, "prelabel_visibility": "hidden"}
    inp = replace(
        case,
        reads=manual_reads,
        reference=manual_refs,
        protocol=hidden,
        pre_annotation=PreAnnotation(models=(only_rejected,)),
    )
    assert pre_annotation(inp)["used"] is True


@pytest.mark.parametrize(
    ("visibility", "review", "phases"),
    [
        ("hidden", True, []),
        ("shown", False, [1]),
        ("shown", True, [1, 2]),
        ("review", True, [2]),
        ("review", False, []),
    ],
)
def test_phases_that_showed_proposals_follow_the_protocol(visibility, review, phases):
    protocol = {"prelabel_visibility": visibility, "review_phase": review}
    assert shown_in_phases(protocol) == phases
