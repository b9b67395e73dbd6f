"""Synthetic fundus photographs: anatomy where the truth says, lesions per DR grade,
laterality mirrored, defects, files with fake PHI metadata, the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures import fundus
from fixtures.defects import UnknownDefectError

ROOT = Path(__file__).resolve().parents[2]
SIZE = 512


def _luma(rgb: np.ndarray) -> np.ndarray:
    f = rgb.astype(np.float32)
    return 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]


def test_same_seed_same_pixels_and_bytes():
    a, ta = fundus.build_fundus(3, size=SIZE, overlay=True)
    b, tb = fundus.build_fundus(3, size=SIZE, overlay=True)
    assert np.array_equal(a, b) and ta == tb
    assert fundus.encode_photo(a, ta, "jpeg") == fundus.encode_photo(b, tb, "jpeg")
    c, _ = fundus.build_fundus(4, size=SIZE)
    assert not np.array_equal(a, c)


def test_left_eye_is_the_mirrored_right_eye():
    od, t_od = fundus.render_fundus(5, size=SIZE, grade=2, laterality="OD")
    os_, t_os = fundus.render_fundus(5, size=SIZE, grade=2, laterality="OS")
    assert np.array_equal(os_, od[:, ::-1])
    assert t_od["optic_disc"]["centre_px"][0] > SIZE / 2  # right eye: disc on the right
    assert t_os["optic_disc"]["centre_px"][0] < SIZE / 2
    assert t_os["optic_disc"]["centre_px"][0] == pytest.approx(
        SIZE - 1 - t_od["optic_disc"]["centre_px"][0], abs=0.02
    )
    assert [les["box"][0] for les in t_os["lesions"]] == [
        SIZE - 1 - les["box"][2] for les in t_od["lesions"]
    ]


def test_anatomy_where_the_truth_says():
    rgb, t = fundus.render_fundus(6, size=SIZE, grade=0, cup_to_disc=0.5)
    y = _luma(rgb)
    dx, dy = (round(v) for v in t["optic_disc"]["centre_px"])
    fx, fy = (round(v) for v in t["fovea"]["centre_px"])
    cx, cy = (round(v) for v in t["field_of_view"]["centre_px"])
    r = t["field_of_view"]["radius_px"]
    ry = round(0.8 * t["optic_disc"]["radius_y_px"])
    disc = y[dy - ry : dy + ry, dx - ry : dx + ry]
    mirror = 2 * cx - dx  # same distance from the centre, temporal side
    retina = y[dy - ry : dy + ry, mirror - ry : mirror + ry]
    assert np.percentile(disc, 75) > 1.5 * np.percentile(retina, 75)  # vessels cross both
    assert y[fy - 2 : fy + 3, fx - 2 : fx + 3].mean() < y[fy - 2 : fy + 3, fx - 60].mean()
    assert y[:10, :10].mean() < 8 and y[int(cy + 1.05 * r) :, :].mean() < 10  # dark surround
    assert t["cup_to_disc_ratio"] == 0.5
    assert t["optic_cup"]["radius_y_px"] == pytest.approx(
        0.5 * t["optic_disc"]["radius_y_px"], abs=0.01
    )
    red, green = rgb[cy, cx - 60 : cx + 60, 0].mean(), rgb[cy, cx - 60 : cx + 60, 1].mean()
    assert red > 1.5 * green  # orange-red retina


@pytest.mark.parametrize("grade", [0, 1, 2, 3, 4])
def test_lesions_follow_the_dr_grade(grade):
    _, t = fundus.render_fundus(7, size=SIZE, grade=grade)
    kinds = {les["type"] for les in t["lesions"]}
    assert t["grade"] == grade and t["referable"] == (grade >= 2)
    if grade == 0:
        assert kinds == set()
    elif grade == 1:
        assert kinds == {"microaneurysm"}
    elif grade == 2:
        assert {"microaneurysm", "haemorrhage", "hard_exudate"} <= kinds
        assert "neovascularisation" not in kinds
    else:
        haem = [les for les in t["lesions"] if les["type"] == "haemorrhage"]
        quadrants = ("superiornasal", "superiortemporal", "inferiornasal", "inferiortemporal")
        per_quadrant = dict.fromkeys(quadrants, 0)
        for les in haem:
            per_quadrant[les["quadrant"]] += 1
        assert min(per_quadrant.values()) > 20, per_quadrant  # the 4-2-1 rule
        assert ("neovascularisation" in kinds) == (grade == 4)
    for les in t["lesions"]:
        x0, y0, x1, y1 = les["box"]
        assert 0 <= x0 <= x1 < SIZE and 0 <= y0 <= y1 < SIZE
        assert x0 <= les["centre_px"][0] <= x1 and y0 <= les["centre_px"][1] <= y1


def test_lesions_are_visible_where_recorded():
    clean, _ = fundus.render_fundus(8, size=SIZE, grade=3, lesions=False)
    rgb, t = fundus.render_fundus(8, size=SIZE, grade=3)
    diff = _luma(rgb) - _luma(clean)
    dark, bright = [], []
    for les in t["lesions"]:
        x, y = (round(v) for v in les["centre_px"])
        if les["type"] in ("microaneurysm", "haemorrhage"):
            dark.append(diff[y, x] < -8)
        elif les["type"] == "cotton_wool_spot":
            bright.append(diff[y, x] > 8)
    # a later lesion may cover an earlier one: nearly all, not all
    assert len(dark) > 80 and sum(dark) >= 0.9 * len(dark)
    assert bright and sum(bright) >= 0.75 * len(bright)


def test_defects_and_levels():
    with pytest.raises(UnknownDefectError):
        fundus.build_fundus(0, "cataract", size=SIZE)
    with pytest.raises(ValueError):
        fundus.build_fundus(0, "blur", level=4, size=SIZE)
    clean, _ = fundus.build_fundus(9, size=SIZE, grade=1)
    over, t = fundus.build_fundus(9, "over-exposed", level=3, size=SIZE, grade=1)
    assert t["defect"] == {"name": "over-exposed", "level": 3, "gain": 3.0}
    assert _luma(over).mean() > 1.8 * _luma(clean).mean()
    small, ts = fundus.build_fundus(9, "small", level=2, size=SIZE, grade=1)
    assert small.shape == (448, 448, 3) and ts["image"]["rows"] == 448
    grey, _ = fundus.build_fundus(9, "greyscale", size=SIZE)
    assert np.array_equal(grey[..., 0], grey[..., 2])
    nofov, tn = fundus.build_fundus(9, "no-fov", size=SIZE)
    assert nofov.mean() < 8 and tn["field_of_view"] is None
    off, to = fundus.build_fundus(9, "off-centre", level=2, size=SIZE)
    assert to["field_of_view"]["centre_px"][0] > 0.6 * SIZE


def test_overlay_burns_the_fake_patient_in():
    rgb, t = fundus.build_fundus(10, size=SIZE, overlay=True)
    x0, y0, x1, y1 = t["burned_in_text"]["box"]
    assert t["burned_in_text"]["text"][1] == f"ID {t['phi']['attributes']['PatientID']}"
    assert (rgb[y0 : y1 + 1, x0 : x1 + 1] == 255).all(axis=2).sum() > 50
    plain, _ = fundus.build_fundus(10, size=SIZE)
    assert (plain[y0 : y1 + 1, x0 : x1 + 1] == 255).all(axis=2).sum() == 0


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_files_carry_fake_phi_in_metadata_and_name(tmp_path, fmt):
    t = fundus.generate_fundus(tmp_path, seed=11, fmt=fmt, size=256, grade=2)
    name = t["files"][0]["file"]
    assert t["phi"]["attributes"]["PatientID"] in name
    data = (tmp_path / name).read_bytes()
    for s in t["metadata_phi_strings"]:
        assert s.encode() in data or s.encode("utf-16-le") in data, s
    im = Image.open(io.BytesIO(data))
    assert im.format == {"jpeg": "JPEG", "png": "PNG", "tiff": "TIFF"}[fmt]
    assert im.info.get("icc_profile") and (im.info.get("xmp") or im.info.get("exif"))
    rgb, _ = fundus.build_fundus(11, size=256, grade=2)
    if fmt != "jpeg":  # lossless formats hold exactly the rendered pixels
        assert np.array_equal(np.asarray(im.convert("RGB")), rgb)
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert truth["files"] == t["files"] and truth["kind"] == "fundus"


def test_cli(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fixtures", "fundus", "--out", str(tmp_path), "--seed", "2",
         "--size", "256", "--format", "png", "--defect", "blur", "--level", "1",
         "--laterality", "os", "--grade", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert truth["laterality"] == "OS" and truth["grade"] == 3
    assert truth["defect"]["name"] == "blur" and truth["defect"]["level"] == 1
    assert (tmp_path / truth["files"][0]["file"]).suffix == ".png"
    bad = subprocess.run(
        [sys.executable, "-m", "fixtures", "fundus", "--out", str(tmp_path), "--defect", "x"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2 and "unknown fundus defect" in bad.stderr
