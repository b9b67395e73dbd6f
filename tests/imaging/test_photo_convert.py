"""Photographs into de-identified Ophthalmic Photography DICOM (pure: no database).

The synthetic photographs carry fake PHI in EXIF, XMP, IPTC, an ICC profile, a JPEG
comment, PNG text chunks, TIFF tags and their file name; none of it may reach the
DICOM bytes, whose pixels must equal the decoded photograph exactly.
"""

from __future__ import annotations

import ast
import datetime as dt
import io
import os
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from annotation_server.imaging.photo import (
    OPHTHALMIC_PHOTOGRAPHY_8BIT,
    PhotoError,
    decode_photo,
    dicom_bytes,
    photo_to_dicom,
)
from fixtures import fundus
from qc import Profile, SeriesInput, run_series

DCIODVFY = "/usr/bin/dciodvfy"
WHEN = dt.datetime(2020, 1, 2, 3, 4, 5)
UIDS = {"study_uid": "2.25.1001", "series_uid": "2.25.1002", "sop_uid": "2.25.1003"}
PACKAGE = Path(__file__).resolve().parents[2] / "annotation_server" / "imaging" / "photo"


def _write(tmp_path, fmt, **opts):
    opts.setdefault("size", 384)
    truth = fundus.generate_fundus(tmp_path, seed=21, fmt=fmt, **opts)
    path = tmp_path / truth["files"][0]["file"]
    return truth, path, path.read_bytes()


def _convert(data, truth, **kw):
    return photo_to_dicom(
        data,
        laterality=truth["laterality"],
        patient_id="RS-P-0001",
        study_id="RS-V-0001",
        content_datetime=WHEN,
        manufacturer="Topcon",
        model="TRC-NW400",
        **UIDS,
        **kw,
    )


def _dciodvfy_errors(path) -> tuple[str, list[str]]:
    if not os.path.exists(DCIODVFY):
        pytest.fail(f"{DCIODVFY} is missing: install dicom3tools")
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    return out, [ln for ln in out.splitlines() if ln.lstrip().startswith("Error")]


def _encodings(s: str) -> list[bytes]:
    out = [s.encode("utf-8"), s.encode("utf-16-le")]
    try:
        out.append(s.encode("gb18030"))
    except UnicodeEncodeError:
        pass
    return out


@pytest.mark.parametrize("fmt", ["jpeg", "png", "tiff"])
def test_photo_becomes_valid_deidentified_op_image(tmp_path, fmt):
    truth, path, data = _write(tmp_path, fmt, overlay=True, grade=2)
    strings = truth["metadata_phi_strings"]
    assert all(any(e in data for e in _encodings(s)) for s in strings)  # the source has them
    ds = _convert(data, truth)
    out = dicom_bytes(ds)
    dcm = tmp_path / "out.dcm"
    dcm.write_bytes(out)

    report, errors = _dciodvfy_errors(dcm)
    assert "OphthalmicPhotography8BitImage" in report
    assert errors == [], report

    leaked = [s for s in strings if any(e in out for e in _encodings(s))]
    assert leaked == []
    assert path.name.encode() not in out and path.stem.encode() not in out
    assert truth["phi"]["attributes"]["PatientID"].encode() not in out
    for marker in (b"Exif", b"xpacket", b"Photoshop", b"8BIM", b"acsp", b"tEXt", b"iTXt"):
        assert marker not in out, marker

    back = pydicom.dcmread(io.BytesIO(out))
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(back.pixel_array, expected)  # lossless w.r.t. the decoded file
    assert back.SOPClassUID == OPHTHALMIC_PHOTOGRAPHY_8BIT and back.Modality == "OP"
    assert back.PhotometricInterpretation == "RGB" and back.SamplesPerPixel == 3
    assert back.ImageLaterality == {"OD": "R", "OS": "L"}[truth["laterality"]]
    assert (back.PatientID, back.StudyID) == ("RS-P-0001", "RS-V-0001")
    assert back.SOPInstanceUID == UIDS["sop_uid"] and back.StudyInstanceUID == "2.25.1001"
    assert back.LossyImageCompression == ("01" if fmt == "jpeg" else "00")
    assert back.Manufacturer == "Topcon" and back.PatientIdentityRemoved == "YES"


def test_greyscale_file_becomes_monochrome2(tmp_path):
    truth, _, data = _write(tmp_path, "png", defect="greyscale")
    assert Image.open(io.BytesIO(data)).mode == "L"
    ds = _convert(data, truth)
    dcm = tmp_path / "grey.dcm"
    dcm.write_bytes(dicom_bytes(ds))
    report, errors = _dciodvfy_errors(dcm)
    assert errors == [], report
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.SamplesPerPixel == 1
    assert np.array_equal(ds.pixel_array, np.asarray(Image.open(io.BytesIO(data))))


def test_same_arguments_same_bytes_and_new_uids_otherwise(tmp_path):
    truth, _, data = _write(tmp_path, "png")
    assert dicom_bytes(_convert(data, truth)) == dicom_bytes(_convert(data, truth))
    a = photo_to_dicom(data, laterality="OS", patient_id="P", study_id="V")
    b = photo_to_dicom(data, laterality="left", patient_id="P", study_id="V")
    assert a.SOPInstanceUID != b.SOPInstanceUID and a.StudyInstanceUID != b.StudyInstanceUID
    assert a.ImageLaterality == b.ImageLaterality == "L"
    assert a.SOPInstanceUID.startswith("2.25.")


def test_exif_orientation_is_applied_then_dropped():
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:10, :, 0] = 255  # red band on top
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", exif=exif.tobytes())
    ds = photo_to_dicom(buf.getvalue(), laterality="OD", patient_id="P", study_id="V")
    assert (ds.Rows, ds.Columns) == (60, 40)
    assert ds.pixel_array[:, -10:, 0].min() == 255  # the top band is now on the right


def test_bad_inputs_are_refused():
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    with pytest.raises(PhotoError, match="not a JPEG, PNG or TIFF"):
        decode_photo(gif.getvalue())
    with pytest.raises(PhotoError, match="cannot decode"):
        decode_photo(b"not an image at all")
    deep = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint16) + 1000).save(deep, "PNG")
    with pytest.raises(PhotoError, match="8-bit"):
        decode_photo(deep.getvalue())
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    with pytest.raises(PhotoError, match="OD or OS"):
        photo_to_dicom(png.getvalue(), laterality="OU", patient_id="P", study_id="V")
    with pytest.raises(PhotoError, match="required"):
        photo_to_dicom(png.getvalue(), laterality="OD", patient_id=" ", study_id="V")


def test_qc_rules_run_on_the_converted_dicom(tmp_path):
    truth, _, clean = _write(tmp_path / "a", "png", grade=1, size=896)
    _, _, blurred = _write(tmp_path / "b", "png", grade=1, defect="blur", level=3, size=896)
    prof = Profile.default_for("OP")
    ok = run_series(SeriesInput.from_datasets([_convert(clean, truth)]), prof, strict=True)
    bad = run_series(SeriesInput.from_datasets([_convert(blurred, truth)]), prof, strict=True)
    photo = [r for r in ok.results if r.rule.startswith("photo_")]
    assert len(photo) == 6 and all(r.status == "pass" for r in photo), photo
    assert ok.result("modality_match").status == "pass"
    assert bad.result("photo_focus").status == "fail"


def test_package_imports_no_framework():
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in ("django", "rest_framework", "celery"), path
                assert not name.startswith("annotation_server"), path
