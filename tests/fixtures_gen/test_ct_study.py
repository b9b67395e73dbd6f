"""A CT study of several series: the thin series and thick reconstructions of the
same scan (fixtures.build_ct_study / plan_reconstruction)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from fixtures import build_ct_datasets, build_ct_study, dataset_bytes

SLICES = 16
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def study():
    return build_ct_study(slices=SLICES, seed=11, matrix=128, reconstructions=(5.0, 2.5))


def _hu(ds) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def test_the_thin_series_is_the_one_build_ct_datasets_makes(study):
    (thin, truth), *_ = study
    alone, alone_truth = build_ct_datasets(slices=SLICES, seed=11, matrix=128)
    assert [dataset_bytes(d) for d in thin] == [dataset_bytes(d) for d in alone]
    assert truth["series_instance_uid"] == alone_truth["series_instance_uid"]


def test_reconstructions_share_the_study_and_not_the_series(study):
    (thin, _), (thick, thick_truth), (mid, _) = study
    first = thin[0]
    for datasets, number, mm, count in ((thick, 3, 5.0, 4), (mid, 4, 2.5, 8)):
        ds = datasets[0]
        assert len(datasets) == count  # 16 x 1.25 mm = 20 mm
        assert ds.StudyInstanceUID == first.StudyInstanceUID
        assert ds.FrameOfReferenceUID == first.FrameOfReferenceUID
        assert ds.PatientID == first.PatientID and ds.PatientName == first.PatientName
        assert ds.SeriesInstanceUID != first.SeriesInstanceUID
        assert ds.SeriesNumber == number
        assert float(ds.SliceThickness) == mm == float(ds.SpacingBetweenSlices)
        assert ds.SeriesDescription == f"Chest {mm:g}mm mediastinum"
        assert list(ds.WindowCenter) == [40, -600]  # soft tissue first
        steps = np.diff([float(d.ImagePositionPatient[2]) for d in datasets])
        assert np.allclose(steps, mm)
    uids = {d.SOPInstanceUID for s, _ in study for d in s}
    assert len(uids) == SLICES + 4 + 8
    assert thick_truth["reconstruction_of"] == study[0][1]["series_instance_uid"]
    assert [f["sop_instance_uid"] for f in thick_truth["files"]] == [
        d.SOPInstanceUID for d in thick
    ]


def test_reconstruction_covers_the_same_range_and_shows_the_same_nodules(study):
    (thin, truth), (thick, thick_truth), _ = study
    z_thin = [float(d.ImagePositionPatient[2]) for d in thin]
    z_thick = [float(d.ImagePositionPatient[2]) for d in thick]
    assert abs(np.mean(z_thin) - np.mean(z_thick)) < 1e-6
    assert min(z_thick) - 2.5 <= min(z_thin) and max(z_thin) <= max(z_thick) + 2.5
    assert thick_truth["nodules"] == truth["nodules"]
    solid = [n for n in truth["nodules"] if n["type"] == "solid" and n["diameter_mm"] >= 6]
    assert solid, "seed 11 plants a solid nodule of 6 mm or more"
    for nodule in solid:
        x, y, z = nodule["centre_mm"]
        k = int(np.argmin([abs(zt - z) for zt in z_thick]))
        ds = thick[k]
        row = int(round((y - float(ds.ImagePositionPatient[1])) / float(ds.PixelSpacing[0])))
        col = int(round((x - float(ds.ImagePositionPatient[0])) / float(ds.PixelSpacing[1])))
        assert _hu(ds)[row, col] > -400  # soft tissue in the lung, not air


def test_same_arguments_same_bytes(study):
    again = build_ct_study(slices=SLICES, seed=11, matrix=128, reconstructions=(5.0, 2.5))
    assert [dataset_bytes(d) for s, _ in again for d in s] == [
        dataset_bytes(d) for s, _ in study for d in s
    ]


def test_command_line_writes_the_reconstructions_beside_the_series(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fixtures", "ct", "--out", str(tmp_path), "--slices", "8"]
        + ["--matrix", "64", "--seed", "5", "--reconstructions", "5,2.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert [r["folder"] for r in truth["reconstructions"]] == ["recon-5mm", "recon-2.5mm"]
    assert [r["num_files"] for r in truth["reconstructions"]] == [2, 4]
    thin = pydicom.dcmread(tmp_path / "CT_0001.dcm")
    for recon in truth["reconstructions"]:
        folder = tmp_path / recon["folder"]
        files = sorted(folder.glob("*.dcm"))
        assert len(files) == recon["num_files"]
        ds = pydicom.dcmread(files[0])
        assert ds.StudyInstanceUID == thin.StudyInstanceUID
        assert ds.SeriesInstanceUID == recon["series_instance_uid"] != thin.SeriesInstanceUID
        inner = json.loads((folder / "truth.json").read_text("utf-8"))
        assert inner["reconstruction_of"] == truth["series_instance_uid"]
    refused = subprocess.run(
        [sys.executable, "-m", "fixtures", "ct", "--out", str(tmp_path / "x")]
        + ["--reconstructions", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "thicknesses must be > 0" in refused.stderr
