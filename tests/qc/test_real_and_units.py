"""Real images from pydicom/pydicom-data go through every applicable rule; unit checks."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from pydicom.dataset import Dataset

import fixtures
from qc import RULES, Profile, RuleResult, SeriesInput, load_series, run_series
from qc.result import STATUSES, worst
from tests.real_dicom import real_dicom_files

REAL = real_dicom_files()


def test_real_files_found():
    assert len(REAL) > 150


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_file_runs_every_rule(path):
    skipped: list[str] = []
    series = load_series([path], skipped=skipped)
    if not series:  # a DICOM file that is no image (DICOMDIR, bare sequences): skipped
        assert len(skipped) == 1
        return
    assert len(series) == 1
    s = series[0]
    for prof in (
        Profile.default_for(s.modality),
        Profile.default_for("CT"),
        Profile.default_for("DX"),
    ):
        for rule in RULES.values():
            if rule.applies(s.modality) or rule.kind == "pixel":
                res = rule.fn(s, prof)
                assert isinstance(res, RuleResult) and res.status in STATUSES
                assert res.rule == rule.key
                json.dumps(res.to_dict(), ensure_ascii=False)


def test_rg1_zero_spacing_warns_not_crashes():
    rg1 = [p for p in REAL if p.name.startswith("RG1")]
    assert rg1
    s = load_series([rg1[0]])[0]
    res = RULES["pixel_spacing"].fn(s, Profile.default_for(s.modality))
    assert res.status == "warn" and "pixels" in res.message_en


def test_missing_spacing_warns():
    ds = Dataset()
    ds.Modality = "CT"
    res = RULES["pixel_spacing"].fn(SeriesInput([ds]), Profile())
    assert res.status == "warn" and res.value is None


def test_registry_entries_are_consistent():
    for key, rule in RULES.items():
        assert rule.key == key and rule.kind in ("header", "pixel") and callable(rule.fn)


def test_worst_order():
    assert worst(["n/a", "pass"]) == "pass"
    assert worst(["pass", "warn", "n/a"]) == "warn"
    assert worst(["warn", "fail"]) == "fail"


def test_profile_json_roundtrip(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"base": "CT", "min_slices": 10, "disabled": ["ct_noise"]}))
    p = Profile.from_json(f)
    assert p.min_slices == 10 and p.disabled == ("ct_noise",) and p.max_slice_thickness_mm == 1.25
    assert Profile.from_dict(p.to_dict()) == p
    with pytest.raises(ValueError):
        Profile.from_dict({"no_such_field": 1})
    assert Profile.default_for("DX").modalities == ("CR", "DX")


def test_profile_selects_rules():
    dss, _ = fixtures.build_ct_datasets(slices=5, seed=0, matrix=32)
    s = SeriesInput.from_datasets(dss)
    rep = run_series(s, Profile(rules=("slice_count", "ct_noise")))
    assert [r.rule for r in rep.results] == ["slice_count", "ct_noise"]


def test_shifted_hu_fails_calibration():
    dss, _ = fixtures.build_ct_datasets(slices=8, seed=0, matrix=128, pixel_spacing=3.0)
    for ds in dss:
        ds.RescaleIntercept = "-824"  # +200 HU everywhere
    res = RULES["ct_hu_calibration"].fn(SeriesInput.from_datasets(dss), Profile())
    assert res.status == "fail"


def test_metal_detected():
    dss, _ = fixtures.build_ct_datasets(slices=8, seed=0, matrix=128, pixel_spacing=3.0)
    arr = dss[4].pixel_array.copy()
    arr[60:70, 60:70] = 4000
    dss[4].PixelData = arr.astype("<u2").tobytes()
    res = RULES["ct_metal"].fn(SeriesInput.from_datasets(dss), Profile())
    assert res.status == "fail" and "#5" in res.message_en


def test_multiframe_positions_from_functional_groups():
    from qc.series import _frames_of

    ds = Dataset()
    ds.NumberOfFrames = 5
    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [po]
    ds.SharedFunctionalGroupsSequence = [shared]
    items = []
    for z in (0.0, 1.0, 2.0, 4.0, 5.0):
        it = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = [0, 0, z]
        it.PlanePositionSequence = [pp]
        items.append(it)
    ds.PerFrameFunctionalGroupsSequence = items
    frames = _frames_of(ds)
    assert [f.position[2] for f in frames] == [0.0, 1.0, 2.0, 4.0, 5.0]
    assert all(f.orientation == (1, 0, 0, 0, 1, 0) for f in frames)
    ds.Modality = "CT"
    res = RULES["slice_missing"].fn(SeriesInput([ds]), Profile())
    assert res.status == "fail"


def test_qc_imports_no_django():
    code = "import sys, qc, qc.cli; print(any(m.split('.')[0]=='django' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_images_are_float_hu():
    dss, _ = fixtures.build_ct_datasets(slices=3, seed=0, matrix=32)
    imgs = SeriesInput.from_datasets(dss).images()
    assert imgs and imgs[0].dtype == np.float32 and imgs[0].min() < 0  # HU, not stored values


def test_collimator_shutters_are_not_clipping_or_foreign_objects():
    ds, _ = fixtures.build_xr_dataset(seed=2, size=256, photometric="MONOCHROME1")
    arr = ds.pixel_array.copy()  # MONOCHROME1: 0 = white (unexposed shutter)
    arr[:, :40] = 0
    arr[:, -40:] = 0
    arr[:30, :] = 0
    ds.PixelData = arr.astype("<u2").tobytes()
    rep = run_series(SeriesInput.from_datasets([ds]), strict=True)
    for key in ("xr_underexposure", "xr_overexposure", "xr_dynamic_range", "xr_foreign_object"):
        assert rep.result(key).status == "pass", rep.result(key)


def test_large_saturated_object_flagged():
    ds, _ = fixtures.build_xr_dataset(seed=2, size=256)
    arr = ds.pixel_array.copy()
    arr[110:150, 100:140] = 4095  # MONOCHROME2: saturated white blob mid-chest
    ds.PixelData = arr.astype("<u2").tobytes()
    rep = run_series(SeriesInput.from_datasets([ds]), strict=True)
    assert rep.result("xr_foreign_object").status in ("warn", "fail")
    assert rep.result("burned_in_text").status == "pass"
