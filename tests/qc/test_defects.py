"""Each synthetic defect is caught by the right rule; clean series pass every rule.

CT fixtures use matrix=128 with 3 mm pixels so the whole chest fits the field of view
(at the generator's default 0.7 mm a 128 matrix is a 90 mm crop: truncated FOV).
"""

from __future__ import annotations

import pytest

import fixtures
from qc import Profile, SeriesInput, run_series

CT_SLICES = 100
CT_OPTS = {"matrix": 128, "pixel_spacing": 3.0}

CT_RULE = {
    "missing-slice": "slice_missing",
    "duplicate-slice": "slice_duplicate",
    "uneven-spacing": "slice_spacing_uniform",
    "mixed-orientation": "orientation_consistent",
    "thick-slices": "slice_thickness",
    "burned-in-text": "burned_in_text",
}
XR_RULE = {
    "over-exposed": "xr_overexposure",
    "under-exposed": "xr_underexposure",
    "burned-in-text": "burned_in_text",
}


def _ct_report(defect: str | None, seed: int):
    dss, truth = fixtures.build_ct_datasets(slices=CT_SLICES, seed=seed, defect=defect, **CT_OPTS)
    return run_series(SeriesInput.from_datasets(dss), Profile.default_for("CT"), strict=True), truth


def test_rule_maps_cover_every_defect():
    assert set(CT_RULE) == set(fixtures.CT_DEFECTS)
    assert set(XR_RULE) == set(fixtures.XR_DEFECTS)


@pytest.mark.parametrize("seed", [0, 3])
def test_clean_ct_passes_every_rule(seed):
    report, truth = _ct_report(None, seed)
    assert truth["defect"] is None
    bad = [
        (r.rule, r.status, r.message_en) for r in report.results if r.status not in ("pass", "n/a")
    ]
    assert bad == []
    assert report.status == "pass"
    assert len(report.results) >= 15


@pytest.mark.parametrize("defect", sorted(fixtures.CT_DEFECTS))
@pytest.mark.parametrize("seed", [1, 7])
def test_ct_defect_caught_by_right_rule(defect, seed):
    report, truth = _ct_report(defect, seed)
    assert truth["defect"]["name"] == defect
    res = report.result(CT_RULE[defect])
    assert res is not None and res.status in ("fail", "warn"), res
    assert res.message_en and res.message_zh
    assert report.status in ("fail", "warn")


def test_missing_slice_message_names_positions():
    report, truth = _ct_report("missing-slice", 2)
    res = report.result("slice_missing")
    assert res.status == "fail" and res.value == 1
    z = truth["defect"]["missing_position_mm"][2]
    step = truth["geometry"]["spacing_between_slices_mm"]
    assert f"z={z - step:.2f}" in res.message_en and f"z={z + step:.2f}" in res.message_en
    assert report.result("slice_duplicate").status == "pass"
    assert report.result("slice_spacing_uniform").status == "pass"


def test_duplicate_and_uneven_are_separate():
    dup, _ = _ct_report("duplicate-slice", 2)
    assert dup.result("slice_missing").status == "pass"
    assert dup.result("slice_spacing_uniform").status == "pass"
    une, _ = _ct_report("uneven-spacing", 2)
    assert une.result("slice_missing").status == "pass"
    assert une.result("slice_duplicate").status == "pass"


def test_burned_in_text_names_the_slice():
    report, truth = _ct_report("burned-in-text", 4)
    res = report.result("burned_in_text")
    assert res.status == "fail" and res.value == 1
    assert f"#{truth['defect']['slice_index'] + 1}" in res.message_en
    assert "top-left" in res.message_en
    assert report.result("ct_metal").status == "pass"


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize("modality", ["DX", "CR"])
@pytest.mark.parametrize("seed", [0, 5])
def test_clean_xr_passes_every_rule(photometric, modality, seed):
    ds, truth = fixtures.build_xr_dataset(
        seed=seed, defect=None, size=512, photometric=photometric, modality=modality
    )
    report = run_series(SeriesInput.from_datasets([ds]), strict=True)
    bad = [
        (r.rule, r.status, r.message_en) for r in report.results if r.status not in ("pass", "n/a")
    ]
    assert bad == []


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize("defect", sorted(fixtures.XR_DEFECTS))
@pytest.mark.parametrize("seed", [1, 6])
def test_xr_defect_caught_by_right_rule(defect, seed, photometric):
    ds, truth = fixtures.build_xr_dataset(
        seed=seed, defect=defect, size=512, photometric=photometric
    )
    assert truth["defect"]["name"] == defect
    report = run_series(SeriesInput.from_datasets([ds]), strict=True)
    res = report.result(XR_RULE[defect])
    assert res is not None and res.status in ("fail", "warn"), res
    # exposure defects are told apart: the opposite rule stays quiet
    if defect == "over-exposed":
        assert report.result("xr_underexposure").status == "pass"
    if defect == "under-exposed":
        assert report.result("xr_overexposure").status == "pass"
