"""Every CT defect is visible in the headers or pixels, and described in truth.json."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures import CT_DEFECTS, build_ct_datasets

N = 9
SPACING = 1.25


def _z(datasets) -> np.ndarray:
    return np.array([float(ds.ImagePositionPatient[2]) for ds in datasets])


def _build(defect):
    return build_ct_datasets(slices=N, seed=4, defect=defect, nodules=2)


def test_all_defects_covered():
    assert set(CT_DEFECTS) == {
        "missing-slice",
        "duplicate-slice",
        "uneven-spacing",
        "mixed-orientation",
        "thick-slices",
        "burned-in-text",
    }


def test_missing_slice():
    datasets, truth = _build("missing-slice")
    d = truth["defect"]
    assert d["name"] == "missing-slice"
    assert len(datasets) == N - 1
    gaps = np.diff(np.sort(_z(datasets)))
    assert np.isclose(gaps, 2 * SPACING).sum() == 1
    assert np.isclose(gaps, SPACING).sum() == N - 3
    numbers = [ds.InstanceNumber for ds in datasets]
    assert d["missing_instance_number"] not in numbers
    assert d["missing_position_mm"][2] not in _z(datasets).tolist()
    assert d["expected_gap_mm"] == 2 * SPACING


def test_duplicate_slice():
    datasets, truth = _build("duplicate-slice")
    d = truth["defect"]
    assert len(datasets) == N + 1
    z = _z(datasets)
    values, counts = np.unique(z, return_counts=True)
    assert counts.max() == 2 and (counts == 2).sum() == 1
    dup_z = values[counts == 2][0]
    pair = [ds for ds in datasets if float(ds.ImagePositionPatient[2]) == dup_z]
    assert pair[0].PixelData == pair[1].PixelData
    assert pair[0].SOPInstanceUID != pair[1].SOPInstanceUID
    assert {p.SOPInstanceUID for p in pair} == {
        d["original_sop_instance_uid"],
        d["duplicate_sop_instance_uid"],
    }
    assert d["position_mm"][2] == pytest.approx(dup_z)


def test_uneven_spacing():
    datasets, truth = _build("uneven-spacing")
    d = truth["defect"]
    gaps = np.diff(_z(datasets))
    assert not np.allclose(gaps, gaps[0])
    irregular = [g["between_slice_indices"][0] for g in d["irregular_gaps"]]
    for i, gap in enumerate(gaps):
        expected = 1.5 * SPACING if i in irregular else SPACING
        assert gap == pytest.approx(expected, abs=1e-3)
    assert all(float(ds.SpacingBetweenSlices) == SPACING for ds in datasets)  # header lies


def test_mixed_orientation():
    datasets, truth = _build("mixed-orientation")
    d = truth["defect"]
    iops = [tuple(float(v) for v in ds.ImageOrientationPatient) for ds in datasets]
    odd = [i for i, v in enumerate(iops) if v != (1, 0, 0, 0, 1, 0)]
    assert odd == [d["slice_index"]]
    iop = np.array(iops[odd[0]])
    assert iop.tolist() == pytest.approx(d["image_orientation_patient"])
    assert np.linalg.norm(iop[:3]) == pytest.approx(1, abs=1e-5)
    assert np.linalg.norm(iop[3:]) == pytest.approx(1, abs=1e-5)
    assert iop[:3] @ iop[3:] == pytest.approx(0, abs=1e-6)
    tilt = np.degrees(np.arccos(iop[4]))
    assert tilt == pytest.approx(d["tilt_degrees"], abs=0.01)


def test_thick_slices():
    datasets, truth = _build("thick-slices")
    assert truth["defect"]["slice_thickness_mm"] == 5.0
    assert all(float(ds.SliceThickness) == 5.0 for ds in datasets)
    np.testing.assert_allclose(np.diff(_z(datasets)), 5.0)


def test_burned_in_text():
    datasets, truth = _build("burned-in-text")
    d = truth["defect"]
    flags = [ds.BurnedInAnnotation for ds in datasets]
    assert flags.count("YES") == 1 and flags.count("NO") == N - 1
    burned = datasets[flags.index("YES")]
    assert burned.SOPInstanceUID == d["sop_instance_uid"]
    x0, y0, x1, y1 = d["box"]
    assert x0 < 20 and y0 < 20  # top-left corner
    region = burned.pixel_array[y0 : y1 + 1, x0 : x1 + 1]
    assert (region == 4095).sum() > 200  # bright glyphs
    assert (region == 0).sum() > 200  # black background
    other = datasets[0].pixel_array[y0 : y1 + 1, x0 : x1 + 1]
    assert (other == 4095).sum() == 0
    assert truth["phi"]["attributes"]["PatientID"] in " ".join(d["text"])
