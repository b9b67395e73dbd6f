"""``python -m qc`` on written folders, no server or database."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import fixtures

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qc", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def _profile(tmp_path: Path) -> Path:
    # 20 slices: lower the lung-CT minimum of 100 (thresholds otherwise the defaults)
    f = tmp_path / "profile.json"
    f.write_text(json.dumps({"base": "CT", "min_slices": 10}))
    return f


def test_clean_folder_exits_0(tmp_path):
    d = tmp_path / "clean"
    fixtures.generate_ct(d, slices=20, matrix=128)
    assert (d / "truth.json").exists()  # the loader skips it with a note
    out = _run(str(d), "--json", "--profile", str(_profile(tmp_path)))
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(out.stdout)
    assert data["status"] == "ok" and len(data["series"]) == 1
    assert data["series"][0]["num_files"] == 20
    assert any("truth.json" in s for s in data["skipped"])
    table = _run(str(d), "--profile", str(_profile(tmp_path)))
    assert table.returncode == 0 and "slice_missing" in table.stdout


def test_missing_slice_folder_exits_1(tmp_path):
    d = tmp_path / "missing"
    fixtures.generate_ct(d, slices=20, matrix=128, defect="missing-slice")
    out = _run(str(d), "--json", "--profile", str(_profile(tmp_path)))
    assert out.returncode == 1, out.stdout + out.stderr
    data = json.loads(out.stdout)
    failed = [r["rule"] for r in data["series"][0]["results"] if r["status"] == "fail"]
    assert failed == ["slice_missing"]
    msg = next(r for r in data["series"][0]["results"] if r["rule"] == "slice_missing")
    assert "missing slice" in msg["message_en"] and msg["message_zh"]


def test_default_profile_fails_short_series(tmp_path):
    d = tmp_path / "short"
    fixtures.generate_ct(d, slices=20, matrix=128)
    out = _run(str(d), "--json")
    assert out.returncode == 1
    data = json.loads(out.stdout)
    assert [r["rule"] for r in data["series"][0]["results"] if r["status"] == "fail"] == [
        "slice_count"
    ]


def test_usage_errors_exit_2(tmp_path):
    assert _run().returncode == 2
    assert _run(str(tmp_path / "nope")).returncode == 2
    assert _run(str(tmp_path)).returncode == 2  # empty folder: no DICOM
    bad = tmp_path / "bad.json"
    bad.write_text('{"min_slices": 1, "bogus": 2}')
    (tmp_path / "x").mkdir()
    fixtures.generate_ct(tmp_path / "x", slices=3, matrix=32)
    assert _run(str(tmp_path / "x"), "--profile", str(bad)).returncode == 2
    assert _run("--bogus-flag", str(tmp_path / "x")).returncode == 2
