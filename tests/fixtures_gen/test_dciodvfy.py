"""dciodvfy (dicom3tools) finds no errors in generated files."""

from __future__ import annotations

import os
import subprocess

import pytest

from fixtures import generate_ct, generate_xr

DCIODVFY = "/usr/bin/dciodvfy"


def _verify(path) -> str:
    if not os.path.exists(DCIODVFY):
        pytest.fail(f"{DCIODVFY} is missing: install dicom3tools (apt-get install dicom3tools)")
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    return proc.stdout + proc.stderr


def _errors(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.lstrip().startswith("Error")]


@pytest.fixture(scope="module")
def ct_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ct")
    generate_ct(out, slices=3, seed=13, defect="burned-in-text")
    return out


@pytest.mark.parametrize("name", ["CT_0001.dcm", "CT_0002.dcm"])
def test_ct_slice(ct_dir, name):
    out = _verify(ct_dir / name)
    assert "CTImage" in out
    assert _errors(out) == [], out


@pytest.mark.parametrize(
    "modality,photometric,defect",
    [
        ("CR", "MONOCHROME1", None),
        ("CR", "MONOCHROME2", "burned-in-text"),
        ("DX", "MONOCHROME2", None),
        ("DX", "MONOCHROME1", "over-exposed"),
    ],
)
def test_radiograph(tmp_path, modality, photometric, defect):
    truth = generate_xr(
        tmp_path, seed=14, size=256, modality=modality, photometric=photometric, defect=defect
    )
    out = _verify(tmp_path / truth["files"][0]["file"])
    assert ("DXImageForPresentation" if modality == "DX" else "CRImage") in out
    assert _errors(out) == [], out
