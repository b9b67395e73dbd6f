"""The command line: ``python -m fixtures ct|xr``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fixtures", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_ct(tmp_path):
    proc = _run("ct", "--out", str(tmp_path), "--slices", "4", "--seed", "3", "--nodules", "2")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "CT_0001.dcm",
        "CT_0002.dcm",
        "CT_0003.dcm",
        "CT_0004.dcm",
        "truth.json",
    ]
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert truth["seed"] == 3 and truth["geometry"]["num_files"] == 4
    assert len(truth["nodules"]) == 2
    assert truth["phi"]["attributes"]["PatientID"]


def test_ct_defect_and_options(tmp_path):
    proc = _run(
        "ct", "--out", str(tmp_path), "--slices", "5", "--defect", "missing-slice",
        "--spacing", "2", "--manufacturer", "philips", "--matrix", "128",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert truth["defect"]["name"] == "missing-slice"
    assert len(list(tmp_path.glob("*.dcm"))) == 4
    assert truth["equipment"]["manufacturer"] == "Philips"


def test_xr(tmp_path):
    proc = _run(
        "xr", "--out", str(tmp_path), "--seed", "2", "--size", "128", "--modality", "cr",
        "--photometric", "MONOCHROME1", "--defect", "burned-in-text",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    truth = json.loads((tmp_path / "truth.json").read_text("utf-8"))
    assert truth["modality"] == "CR" and truth["image"]["photometric_interpretation"] == (
        "MONOCHROME1"
    )
    assert (tmp_path / "CR_0001.dcm").is_file()


def test_same_seed_same_bytes(tmp_path):
    for d in ("a", "b"):
        proc = _run("xr", "--out", str(tmp_path / d), "--seed", "4", "--size", "96")
        assert proc.returncode == 0, proc.stderr
    for name in ("DX_0001.dcm", "truth.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_unknown_defect_exits_2(tmp_path):
    for kind in ("ct", "xr"):
        proc = _run(kind, "--out", str(tmp_path / kind), "--defect", "no-such-defect")
        assert proc.returncode == 2
        assert "unknown" in proc.stderr and "no-such-defect" in proc.stderr
        assert not (tmp_path / kind / "truth.json").exists()


def test_usage_errors_exit_2(tmp_path):
    assert _run("ct").returncode == 2  # --out missing
    assert _run("xr", "--out", str(tmp_path), "--modality", "MR").returncode == 2
    assert _run("ct", "--out", str(tmp_path), "--slices", "0").returncode == 2


def test_help():
    proc = _run("--help")
    assert proc.returncode == 0 and "ct" in proc.stdout and "xr" in proc.stdout


def test_no_django_import():
    code = "import sys, fixtures; assert not [m for m in sys.modules if m.startswith('django')]"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
