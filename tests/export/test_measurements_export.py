"""Findings' measurements in the package (export/, no Django): the reads and
reference tables carry them with their units in the column names, the data
dictionary and croissant.json describe them, and the TID 1500 SR holds them as
coded measurements with UCUM units."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import highdicom as hd
import pytest
from pydicom.sr.codedict import codes

from export import package as pkg
from export.nifdc_tables import MEASURED, REFERENCE_MEASURED
from tests.export.builders import make_input

SPEC_READ_COLUMNS = [
    "read_id", "case_id", "series_uid", "reader_pseudo_id", "phase", "started_at",
    "submitted_at", "finding_id", "finding_type", "x_mm", "y_mm", "z_mm", "long_axis_mm",
    "short_axis_mm", "volume_mm3",
]  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    warnings.simplefilter("ignore")
    inp, _ = make_input(tmp_path_factory.mktemp("src"), cases=1)
    return inp, pkg.write_package(inp, tmp_path_factory.mktemp("out"))


def _table(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    with open(path, encoding="utf-8-sig") as fh:
        return next(csv.reader(fh)), rows


def test_reader_reads_keep_the_spec_columns_in_place_and_append_the_measurements(built):
    _, root = built
    header, rows = _table(root / "annotations/reader_reads.csv")
    assert header[: len(SPEC_READ_COLUMNS)] == SPEC_READ_COLUMNS
    assert header[-len(MEASURED) :] == ["mean_diameter_mm", "mean_hu", "max_hu", "axes_from"]
    assert header[-len(MEASURED) - 1] == "tool_version"
    f1 = {r["reader_pseudo_id"]: r for r in rows if r["finding_id"].endswith("-f1")}
    assert f1["R1"]["long_axis_mm"] == "5.6" and f1["R1"]["short_axis_mm"] == "4.9"
    assert f1["R1"]["volume_mm3"] == "71.5" and f1["R1"]["mean_diameter_mm"] == "5.25"
    assert f1["R1"]["mean_hu"] == "-35.2" and f1["R1"]["max_hu"] == "88"
    assert f1["R1"]["axes_from"] == "contour" and f1["R3"]["axes_from"] == "reader"
    point = next(r for r in rows if r["finding_id"].endswith("-f3"))
    assert point["long_axis_mm"] == point["mean_hu"] == point["axes_from"] == ""
    assert point["tool_version"] == "RefSet 0.9"


def test_reference_tables_append_the_measurements_before_the_exclusion_reason(built):
    _, root = built
    header, rows = _table(root / "annotations/reference_standard.csv")
    assert header[-len(REFERENCE_MEASURED) :] == REFERENCE_MEASURED
    assert header[-len(REFERENCE_MEASURED) - 1] == "assist_models"
    ref1 = next(r for r in rows if r["ref_finding_id"].endswith("ref1"))
    assert (ref1["long_axis_mm"], ref1["volume_mm3"], ref1["mean_hu"], ref1["max_hu"]) == (
        "5.66",
        "75.3",
        "-30.5",
        "91",
    )
    excluded, _ = _table(root / "annotations/reference_excluded.csv")
    assert excluded[-1] == "exclusion_reason"
    assert excluded[-len(REFERENCE_MEASURED) - 1 : -1] == REFERENCE_MEASURED


def test_dictionary_and_croissant_give_each_measurement_its_unit_and_type(built):
    _, root = built
    _, described = _table(root / "dictionary/data_dictionary.csv")
    units = {
        (r["file"], r["column"]): (r["type"], r["unit"], r["description_zh"])
        for r in described
        if r["file"] == "annotations/reference_standard.csv"
    }
    ref = "annotations/reference_standard.csv"
    assert units[(ref, "long_axis_mm")][:2] == ("number", "mm")
    assert units[(ref, "volume_mm3")][:2] == ("number", "mm3")
    assert units[(ref, "mean_hu")][:2] == units[(ref, "max_hu")][:2] == ("number", "HU")
    assert units[(ref, "axes_from")][0] == "enum" and "contour" in units[(ref, "axes_from")][2]
    croissant = json.loads((root / "croissant.json").read_text())
    fields = {
        f["name"]: f["dataType"]
        for rs in croissant["recordSet"]
        if rs["name"] == "annotations/reader_reads.csv"
        for f in rs["field"]
    }
    assert fields["mean_hu"] == fields["long_axis_mm"] == "sc:Float"
    assert fields["axes_from"] == "sc:Text"


def _measurements(path: Path) -> dict[str, list[tuple]]:
    """tracking identifier -> [(name, derivation, value, unit)] of each ROI group."""
    sr = hd.sr.srread(path)
    out = {}
    for group in sr.content.get_planar_roi_measurement_groups():
        found = []
        for m in group.get_measurements():
            derivation = m.derivation.value if m.derivation is not None else None
            found.append((m.name.value, derivation, float(m.value), m.unit.value))
        out[group.tracking_identifier] = found
    return out


def test_read_sr_holds_axes_volume_and_hu_with_standard_codes_and_ucum_units(built):
    _, root = built
    groups = _measurements(root / "annotations/dicom/SR/reads/C0000-R1-p1.dcm")
    f1 = next(v for k, v in groups.items() if k.endswith("C0000-R1-f1"))
    assert f1 == [
        (codes.SCT.LongAxis.value, None, 5.6, "mm"),
        (codes.SCT.ShortAxis.value, None, 4.9, "mm"),
        (codes.SCT.Volume.value, None, 71.5, "mm3"),
        ("112031", codes.SCT.Mean.value, -35.2, "[hnsf'U]"),
        ("112031", codes.SCT.Maximum.value, 88.0, "[hnsf'U]"),
    ]
    f2 = next(v for k, v in groups.items() if k.endswith("C0000-R1-f2"))
    assert f2 == [(codes.SCT.LongAxis.value, None, 4.2, "mm")]  # only what is known


def test_reference_sr_adds_the_measurements_after_the_consensus_diameter(built):
    _, root = built
    path = next(root.glob("annotations/dicom/SR/reference/*.dcm"))
    ref1 = next(v for k, v in _measurements(path).items() if k.endswith("ref1"))
    assert [(name, derivation) for name, derivation, _, _ in ref1] == [
        (codes.SCT.Diameter.value, None),
        (codes.SCT.LongAxis.value, None),
        (codes.SCT.ShortAxis.value, None),
        (codes.SCT.Volume.value, None),
        ("112031", codes.SCT.Mean.value),
        ("112031", codes.SCT.Maximum.value),
    ]
    assert ref1[4][2:] == (-30.5, "[hnsf'U]")


def test_negative_numbers_are_numbers_in_the_tables_and_the_luna16_files(built):
    _, root = built
    luna = (root / "annotations/luna16/annotations.csv").read_text().splitlines()
    assert luna[1].split(",")[1:4] == ["-7.3", "-5", "-150"]
    _, rows = _table(root / "annotations/reader_reads.csv")
    assert {r["x_mm"] for r in rows if r["finding_id"] == "C0000-R1-f1"} == {"-8"}


def test_the_package_states_how_it_measured_and_counts_by_origin_of_the_axes(built):
    from qc.measurements import METHOD

    _, root = built
    doc = json.loads((root / "docs/measurements.json").read_text())
    assert doc["method"] == METHOD
    assert len(doc["rules_zh"]) == len(doc["rules_en"]) == 6
    assert doc["columns"]["annotations/reference_standard.csv"] == REFERENCE_MEASURED
    assert doc["findings_by_axes_from"] == {
        "reads": {"contour": 2, "none": 4, "reader": 1},
        "reference": {"contour": 1, "none": 1},
    }
    assert "docs/measurements.json" in (root / "README.md").read_text()
    assert "docs/measurements.json" in (root / "MANIFEST.sha256").read_text()
