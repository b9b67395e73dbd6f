"""Chest CT series: geometry, HU realism, nodules, truth.json consistency, speed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fixtures
from fixtures import build_ct_datasets, dataset_bytes, generate_ct

SLICES = 12


@pytest.fixture(scope="module")
def series():
    return build_ct_datasets(slices=SLICES, seed=7)


def _hu(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_header_basics(series):
    datasets, truth = series
    assert len(datasets) == SLICES == len(truth["files"])
    first = datasets[0]
    assert first.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert first.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    assert (first.Rows, first.Columns) == (512, 512)
    assert first.BitsAllocated == 16 and first.PixelRepresentation == 0
    assert float(first.RescaleIntercept) == -1024 and float(first.RescaleSlope) == 1
    assert first.PatientPosition == "HFS"
    assert first.Modality == "CT" and first.BodyPartExamined == "CHEST"
    for kw in ("Manufacturer", "ManufacturerModelName", "ConvolutionKernel", "KVP"):
        assert str(first.data_element(kw).value)
    assert list(first.WindowCenter) == [-600, 40] and list(first.WindowWidth) == [1500, 400]
    for ds in datasets:
        assert ds.StudyInstanceUID == truth["study_instance_uid"]
        assert ds.SeriesInstanceUID == truth["series_instance_uid"]
        assert ds.FrameOfReferenceUID == truth["frame_of_reference_uid"]
        assert ds.StudyInstanceUID.startswith("2.25.")
    assert len({ds.SOPInstanceUID for ds in datasets}) == SLICES
    assert [f["sop_instance_uid"] for f in truth["files"]] == [d.SOPInstanceUID for d in datasets]


def test_geometry_positions_step_along_normal(series):
    datasets, truth = series
    geo = truth["geometry"]
    spacing = geo["spacing_between_slices_mm"]
    ipps = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets])
    iop = np.array([float(v) for v in datasets[0].ImageOrientationPatient])
    assert iop.tolist() == [1, 0, 0, 0, 1, 0]
    normal = np.cross(iop[:3], iop[3:])
    steps = np.diff(ipps @ normal)
    np.testing.assert_allclose(steps, spacing, atol=1e-4)
    np.testing.assert_allclose(np.diff(ipps[:, :2], axis=0), 0, atol=1e-6)
    assert [ds.InstanceNumber for ds in datasets] == list(range(1, SLICES + 1))
    for ds in datasets:
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds.SliceLocation) == pytest.approx(float(ds.ImagePositionPatient[2]))
        assert float(ds.SliceThickness) == geo["slice_thickness_mm"]
        assert float(ds.SpacingBetweenSlices) == spacing
        assert [float(v) for v in ds.PixelSpacing] == geo["pixel_spacing_mm"]
    assert geo["origin_mm"] == pytest.approx(ipps[0].tolist())
    for f, ds in zip(truth["files"], datasets, strict=True):
        assert f["image_position_patient"] == pytest.approx(
            [float(v) for v in ds.ImagePositionPatient]
        )


def test_hu_realistic(series):
    datasets, _ = series
    hu = _hu(datasets[SLICES // 2])
    assert abs(hu[:20, :20].mean() + 1000) < 10  # air outside the body
    assert abs(np.median(hu[(hu > -950) & (hu < -700)]) + 850) < 40  # lungs
    assert ((hu > -140) & (hu < -60)).sum() > 5000  # fat
    assert ((hu > 20) & (hu < 70)).sum() > 5000  # soft tissue
    assert (hu > 500).sum() > 300  # bone (spine, ribs)
    assert abs(np.median(hu[hu > 500]) - 700) < 100


def test_nodules_match_truth(series):
    datasets, truth = series
    assert len(truth["nodules"]) == 3
    assert {n["type"] for n in truth["nodules"]} == {"solid", "part-solid", "ground-glass"}
    ps = truth["geometry"]["pixel_spacing_mm"]
    for n in truth["nodules"]:
        col, row, k = n["centre_voxel"]
        ds = datasets[k]
        assert ds.InstanceNumber == k + 1
        ipp = np.array([float(v) for v in ds.ImagePositionPatient])
        expect_mm = ipp + np.array([col * ps[1], row * ps[0], 0.0])
        np.testing.assert_allclose(n["centre_mm"], expect_mm, atol=1e-3)
        hu = _hu(ds)
        centre = hu[row - 1 : row + 2, col - 1 : col + 2].mean()
        assert abs(centre - n["centre_hu"]) < 20, (n, centre)
        assert n["diameter_mm"] > 0
        if n["type"] == "part-solid":
            assert 0 < n["solid_diameter_mm"] < n["diameter_mm"]
            off = int(round((n["solid_diameter_mm"] + n["diameter_mm"]) / 4 / ps[1]))
            halo = hu[row - 1 : row + 2, col + off - 1 : col + off + 2].mean()
            assert abs(halo + 600) < 60, halo
        # just outside the nodule it is lung-ish again (no -600 / +40 plateau)
        out = int(round((n["diameter_mm"] / 2 + 3) / ps[1]))
        ring = [hu[row, col + out], hu[row, col - out], hu[row + out, col], hu[row - out, col]]
        assert min(ring) < -700


def test_manufacturer_options():
    datasets, truth = build_ct_datasets(
        slices=1, seed=3, manufacturer="ge", kernel="BONEPLUS", kvp=100, nodules=0
    )
    ds = datasets[0]
    assert ds.Manufacturer == "GE MEDICAL SYSTEMS"
    assert ds.ConvolutionKernel == "BONEPLUS"
    assert float(ds.KVP) == 100
    assert truth["equipment"]["convolution_kernel"] == "BONEPLUS"
    assert truth["nodules"] == []


def test_custom_geometry():
    datasets, truth = build_ct_datasets(
        slices=3, seed=2, spacing=2.0, thickness=2.5, pixel_spacing=0.8, matrix=256, nodules=1
    )
    assert (datasets[0].Rows, datasets[0].Columns) == (256, 256)
    z = [float(ds.ImagePositionPatient[2]) for ds in datasets]
    np.testing.assert_allclose(np.diff(z), 2.0)
    assert float(datasets[0].SliceThickness) == 2.5
    assert truth["geometry"]["pixel_spacing_mm"] == [0.8, 0.8]


def test_determinism_in_memory():
    a, ta = build_ct_datasets(slices=3, seed=11)
    b, tb = build_ct_datasets(slices=3, seed=11)
    c, tc = build_ct_datasets(slices=3, seed=12)
    assert [dataset_bytes(x) for x in a] == [dataset_bytes(x) for x in b]
    assert ta == tb
    assert dataset_bytes(a[0]) != dataset_bytes(c[0])
    assert a[0].PixelData != c[0].PixelData
    assert ta["study_instance_uid"] != tc["study_instance_uid"]
    assert ta["phi"]["attributes"]["PatientID"] != tc["phi"]["attributes"]["PatientID"]


def test_determinism_on_disk(tmp_path):
    t1 = generate_ct(tmp_path / "a", slices=3, seed=5, defect="burned-in-text")
    t2 = generate_ct(tmp_path / "b", slices=3, seed=5, defect="burned-in-text")
    assert t1 == t2
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["CT_0001.dcm", "CT_0002.dcm", "CT_0003.dcm", "truth.json"]
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert json.loads((tmp_path / "a" / "truth.json").read_text("utf-8")) == t1


def test_bad_arguments():
    with pytest.raises(fixtures.UnknownDefectError):
        build_ct_datasets(slices=3, defect="over-exposed")
    with pytest.raises(ValueError):
        build_ct_datasets(slices=0)
    with pytest.raises(ValueError):
        build_ct_datasets(slices=2, defect="missing-slice")
    with pytest.raises(ValueError):
        build_ct_datasets(slices=2, seed=-1)


def test_300_slices_completes(tmp_path):
    """Speed proof: a full 300-slice series is written in seconds (not asserted)."""
    truth = generate_ct(tmp_path, slices=300, seed=1)
    files = sorted(tmp_path.glob("CT_*.dcm"))
    assert len(files) == 300 == truth["geometry"]["num_files"]
