"""Chest radiographs: CR/DX and MONOCHROME1/2 variants, findings, exposure defects."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures import XR_DEFECTS, UnknownDefectError, build_xr_dataset, dataset_bytes, generate_xr

SIZE = 256


def _display(ds) -> np.ndarray:
    """Pixel values in MONOCHROME2 sense (bright = dense)."""
    a = ds.pixel_array.astype(np.float64)
    return 4095 - a if ds.PhotometricInterpretation == "MONOCHROME1" else a


@pytest.mark.parametrize("modality", ["CR", "DX"])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_variants_headers(modality, photometric):
    ds, truth = build_xr_dataset(seed=1, modality=modality, photometric=photometric, size=SIZE)
    sop = {"CR": "1.2.840.10008.5.1.4.1.1.1", "DX": "1.2.840.10008.5.1.4.1.1.1.1"}[modality]
    assert ds.SOPClassUID == sop == truth["sop_class_uid"]
    assert ds.Modality == modality == truth["modality"]
    assert ds.PhotometricInterpretation == photometric
    assert (ds.Rows, ds.Columns) == (SIZE, SIZE)
    assert ds.ViewPosition == "PA" and ds.BodyPartExamined == "CHEST"
    assert len(ds.ImagerPixelSpacing) == 2 and len(ds.PixelSpacing) == 2
    assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(430.0 / SIZE, rel=1e-5)
    assert ds.BurnedInAnnotation == "NO"
    if modality == "DX":
        expected = "IDENTITY" if photometric == "MONOCHROME2" else "INVERSE"
        assert ds.PresentationLUTShape == expected
        assert ds.PresentationIntentType == "FOR PRESENTATION"


def test_default_size_is_2000():
    ds, truth = build_xr_dataset(seed=2, modality="CR")
    assert (ds.Rows, ds.Columns) == (2000, 2000)
    assert truth["image"]["rows"] == 2000


def test_monochrome1_is_inverted_monochrome2():
    m1, _ = build_xr_dataset(seed=3, size=SIZE, photometric="MONOCHROME1")
    m2, _ = build_xr_dataset(seed=3, size=SIZE, photometric="MONOCHROME2")
    np.testing.assert_array_equal(m1.pixel_array.astype(int), 4095 - m2.pixel_array.astype(int))


def test_thorax_looks_like_a_chest():
    ds, _ = build_xr_dataset(seed=4, size=SIZE, findings=())
    img = _display(ds)
    n = SIZE
    lung_r = img[int(0.4 * n) : int(0.5 * n), int(0.27 * n) : int(0.35 * n)].mean()
    lung_l = img[int(0.4 * n) : int(0.5 * n), int(0.65 * n) : int(0.73 * n)].mean()
    spine = img[int(0.4 * n) : int(0.5 * n), int(0.49 * n) : int(0.51 * n)].mean()
    outside = img[: int(0.05 * n), : int(0.05 * n)].mean()
    abdomen = img[int(0.9 * n) :, int(0.3 * n) : int(0.7 * n)].mean()
    assert outside < 400  # direct exposure is black in MONOCHROME2
    assert lung_r < spine - 800 and lung_l < spine - 800  # lungs dark, mediastinum bright
    assert abdomen > lung_r + 800


def test_findings_boxes_and_visibility():
    base, _ = build_xr_dataset(seed=5, size=512, findings=())
    ds, truth = build_xr_dataset(seed=5, size=512)
    assert [f["type"] for f in truth["findings"]] == ["nodule", "pneumothorax", "effusion"]
    a, b = _display(ds), _display(base)
    for f in truth["findings"]:
        x0, y0, x1, y1 = f["box"]
        assert 0 <= x0 < x1 < 512 and 0 <= y0 < y1 < 512
        assert f["side"] in ("left", "right")
        diff = a[y0 : y1 + 1, x0 : x1 + 1].mean() - b[y0 : y1 + 1, x0 : x1 + 1].mean()
        if f["type"] == "pneumothorax":
            assert diff < -30, f  # more lucent
        else:
            assert diff > 30, f  # denser
        # patient's right lung is on the image left (PA view)
        centre_x = (x0 + x1) / 2
        assert (centre_x < 256) == (f["side"] == "right")


def test_findings_subset():
    _, truth = build_xr_dataset(seed=6, size=SIZE, findings=["effusion"])
    assert [f["type"] for f in truth["findings"]] == ["effusion"]
    with pytest.raises(ValueError):
        build_xr_dataset(seed=6, size=SIZE, findings=["fracture"])


def test_exposure_defects():
    normal, tn = build_xr_dataset(seed=7, size=SIZE)
    over, to = build_xr_dataset(seed=7, size=SIZE, defect="over-exposed")
    under, tu = build_xr_dataset(seed=7, size=SIZE, defect="under-exposed")
    n, o, u = _display(normal), _display(over), _display(under)
    assert o.mean() < n.mean() - 500
    assert (o == 0).mean() > 0.25  # clipped to black
    assert u.mean() > n.mean() + 500
    flat = (slice(int(0.85 * SIZE), int(0.95 * SIZE)), slice(int(0.3 * SIZE), int(0.45 * SIZE)))
    assert np.diff(u[flat], axis=1).std() > 3 * np.diff(n[flat], axis=1).std()  # noisy
    assert u.std() < n.std()  # washed out
    assert float(over.DeviationIndex) > 3 and float(under.DeviationIndex) < -3
    assert abs(float(normal.DeviationIndex)) < 1
    assert to["defect"]["name"] == "over-exposed" and tu["defect"]["name"] == "under-exposed"
    assert tn["defect"] is None


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_burned_in_text(photometric):
    ds, truth = build_xr_dataset(seed=8, size=512, defect="burned-in-text", photometric=photometric)
    assert ds.BurnedInAnnotation == "YES"
    d = truth["defect"]
    x0, y0, x1, y1 = d["box"]
    assert x0 < 40 and y0 < 40
    region = _display(ds)[y0 : y1 + 1, x0 : x1 + 1]
    assert (region == 4095).sum() > 300 and (region == 0).sum() > 300
    assert truth["phi"]["attributes"]["PatientID"] in " ".join(d["text"])
    assert truth["files"][0]["burned_in_annotation"] is True


def test_determinism(tmp_path):
    a, _ = build_xr_dataset(seed=9, size=SIZE)
    b, _ = build_xr_dataset(seed=9, size=SIZE)
    c, _ = build_xr_dataset(seed=10, size=SIZE)
    assert dataset_bytes(a) == dataset_bytes(b)
    assert dataset_bytes(a) != dataset_bytes(c)
    t1 = generate_xr(tmp_path / "1", seed=9, size=SIZE, modality="CR")
    t2 = generate_xr(tmp_path / "2", seed=9, size=SIZE, modality="CR")
    assert t1 == t2
    for name in ("CR_0001.dcm", "truth.json"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()


def test_bad_arguments():
    assert set(XR_DEFECTS) == {"over-exposed", "under-exposed", "burned-in-text"}
    with pytest.raises(UnknownDefectError):
        build_xr_dataset(size=SIZE, defect="missing-slice")
    with pytest.raises(ValueError):
        build_xr_dataset(size=SIZE, modality="MR")
    with pytest.raises(ValueError):
        build_xr_dataset(size=SIZE, photometric="RGB")
