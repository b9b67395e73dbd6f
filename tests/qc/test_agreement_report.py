"""The full report from synthetic reads with known truth."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from qc.agreement import figures, synthetic
from qc.agreement.report import CaseData, Reader, Settings, build_report
from qc.matching import Mark

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "annotation_server/agreement/report.schema.json").read_text()
)


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(cases=40, readers=4, seed=5)


@pytest.fixture(scope="module")
def report(data):
    return build_report(*data, Settings(replicates=200))


def test_report_fits_its_json_schema_and_has_no_nan(report):
    jsonschema.validate(report, SCHEMA)
    json.dumps(report, allow_nan=False)


def test_report_is_reproducible(data, report):
    again = build_report(*data, Settings(replicates=200))
    assert again == report
    other = build_report(*data, Settings(replicates=200, seed=2))
    assert other["detection"]["agreement"]["low"] != report["detection"]["agreement"]["low"]


def test_detection_counts_add_up(data, report):
    _, readers, cases = data
    det = report["detection"]
    for row in det["per_reader"]:
        n_ref = sum(len(c.reference) for c in cases)
        assert row["tp"] + row["fn"] == n_ref
        marks = sum(len(c.reads[row["reader"]]) for c in cases)
        assert row["tp"] + row["fp"] == marks
        assert 0.5 < row["sensitivity"]["value"] <= 1
        assert (
            row["sensitivity"]["low"] <= row["sensitivity"]["value"] <= row["sensitivity"]["high"]
        )
    marked = sum(r["readers"] * r["lesions"] for r in det["lidc_table"])
    assert marked == report["counts"]["findings"]
    m = np.asarray(det["matrix"], dtype=float)
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1)


def test_perfect_readers_agree_perfectly():
    mark = {"finding_type": "nodule", "kind": "point", "attributes": {"malignancy": 3}}
    cases = [
        CaseData(
            id=f"C{i}",
            reads={
                r: [Mark(id=f"{i}{r}", reader=r, centre_mm=(10.0 * i, 0.0, 0.0), **mark)]
                for r in ("a", "b", "c")
            },
            reference=[Mark(id=f"ref{i}", reader="reference", centre_mm=(10.0 * i, 0, 0), **mark)],
            labels={r: {"image_quality": 1 + i % 3} for r in ("a", "b", "c")},
        )
        for i in range(6)
    ]
    fields = [f for f in synthetic.FIELDS if f.key in ("malignancy", "image_quality")]
    rep = build_report(
        fields, [Reader(r, r.upper()) for r in "abc"], cases, Settings(replicates=50)
    )
    assert rep["detection"]["agreement"]["value"] == 1.0
    assert rep["detection"]["lidc_table"][-1]["lesions"] == 6
    assert all(
        r["sensitivity"]["value"] == 1.0 and r["fp"] == 0 for r in rep["detection"]["per_reader"]
    )
    quality = rep["case_labels"][0]
    assert quality["krippendorff_alpha"]["value"] == 1.0
    assert quality["percent_agreement"]["value"] == 1.0


def test_strata_and_weeks_partition_the_cases(report):
    site = next(d for d in report["strata"] if d["dimension"] == "site")
    assert sum(g["cases"] for g in site["groups"]) == report["counts"]["cases"]
    assert sum(w["cases"] for w in report["weekly"]) == report["counts"]["cases"]
    sizes = next(d for d in report["strata"] if d["dimension"] == "size_band")
    assert sum(g["clusters"] for g in sizes["groups"]) == report["counts"]["clusters"]
    bands = next(d for d in report["strata"] if d["dimension"] == "experience_band")
    assert {g["value"] for g in bands["groups"]} == {"<5", "5-9", "10-19", ">=20"}


def test_stratified_bootstrap(data):
    rep = build_report(*data, Settings(replicates=100, stratify_by="site"))
    assert rep["settings"]["stratified_by"] == "site"
    e = rep["detection"]["agreement"]
    assert e["low"] < e["value"] < e["high"]


def test_numbers_get_icc_and_bland_altman(report):
    size = next(b for b in report["attributes"] if b["key"] == "long_axis_mm")
    assert size["icc"]["ICC(2,1)"]["value"] > 0.8  # synthetic readers measure well
    assert "two-way random" in size["icc"]["ICC(2,1)"]["name"]
    assert size["bland_altman"] and size["points"]
    assert abs(size["bland_altman_pooled"]["bias"]["value"]) < 1.0


def test_shapes_and_staple(report):
    s = report["shapes"]
    assert s["pairs"] > 0 and 0 < s["dice"]["value"] < 1 and s["hd95_mm"]["value"] > 0
    assert all(0 <= r["sensitivity"] <= 1 for r in s["staple"] if r["sensitivity"] is not None)


def test_figures_are_png_and_svg(report):
    png = figures.figures(report, "png", threshold=0.8)
    assert {"heatmap", "detection", "lidc", "weekly"} <= set(png)
    assert any(name.startswith("bland-altman") for name in png)
    assert all(v.startswith(b"\x89PNG") for v in png.values())
    svg = figures.figures(report, "svg")
    assert all(b"<svg" in v for v in svg.values())
