"""DICOM SEG of fundus photographs (export/fundus_seg.py) without the database: a
read's haemorrhage polygon, exudate box and disc/cup outlines become BINARY
segments on the Ophthalmic Photography image (its own SOP Instance UID), a
microaneurysm point none; the reference's SEG is what the reference table's
seg_ref names; the objects pass dciodvfy and read back with highdicom."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import replace

import highdicom as hd
import numpy as np
import pydicom
import pytest

from export import fundus_seg
from export.model import FindingRecord, ReadRecord, ReferenceRecord
from export.package import write_package
from export.verify import verify
from qc.raster import rasterise
from tests.export.builders import make_fundus_input

SIZE = 128
SPECS = [(1, "OD", "png"), (2, "OS", "jpeg")]


def _geometry(kind, points):
    return {"kind": kind, "shapes": [{"slice_index": 0, "points": points}], "centre_mm": None}


HAEMORRHAGE = _geometry("polygon", [[30, 30], [50, 32], [45, 55], [28, 48]])
EXUDATE = _geometry("box", [[70, 70], [90, 84]])
DISC = _geometry("ellipse", [[80, 40], [110, 72]])
CUP = _geometry("polygon", [[90, 50], [100, 50], [100, 62], [90, 62]])
POINT = _geometry("point", [[20, 100]])


def _input(tmp_path):
    inp, _ = make_fundus_input(tmp_path / "dicom", SPECS, SIZE)
    case = inp.cases[0]
    uid = case.series[0].series_uid
    findings = (
        FindingRecord("f-h", "haemorrhage", HAEMORRHAGE),
        FindingRecord("f-e", "hard_exudate", EXUDATE),
        FindingRecord("f-d", "optic_disc", DISC),
        FindingRecord("f-c", "optic_cup", CUP),
        FindingRecord("f-m", "microaneurysm", POINT),
    )
    read = ReadRecord("11", case.case_id, uid, "R1", 1, findings=findings)
    reference = (
        ReferenceRecord("r1r1", case.case_id, uid, "haemorrhage", None, None, HAEMORRHAGE),
        ReferenceRecord("r2r1", case.case_id, uid, "microaneurysm", None, None, POINT),
    )
    return replace(inp, reads=(read,), reference=reference), case


def _mask(geometry):
    shapes = [(s["slice_index"], s["points"]) for s in geometry["shapes"]]
    sparse = rasterise(geometry["kind"], shapes)
    out = np.zeros((SIZE, SIZE), bool)
    _, r0, c0 = sparse.origin
    data = sparse.data[0]
    out[r0 : r0 + data.shape[0], c0 : c0 + data.shape[1]] = data
    return out


def test_a_reads_lesions_and_outlines_are_segments_on_the_photograph(tmp_path):
    inp, case = _input(tmp_path)
    series = case.series[0]
    seg = fundus_seg.for_read(inp, inp.reads[0], series)
    photo = pydicom.dcmread(series.instances[0].path, stop_before_pixels=True)
    assert "SharedFunctionalGroupsSequence" not in photo  # the shim is a copy
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"
    labels = [s.SegmentLabel for s in seg.SegmentSequence]
    assert labels == [
        "optic_cup f-c",
        "optic_disc f-d",
        "hard_exudate f-e",
        "haemorrhage f-h",
    ]  # by finding id; the microaneurysm point has no area
    types = [s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in seg.SegmentSequence]
    assert types[1].startswith("Optic disc structure") and types[3].startswith("Hemorrhage")
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == photo.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == photo.SOPClassUID
    # no pixel spacing stated that the photograph does not have
    assert "PixelSpacing" not in photo
    assert "PixelMeasuresSequence" not in seg.SharedFunctionalGroupsSequence[0]
    back = hd.seg.Segmentation.from_dataset(seg)
    for number, geometry in enumerate((CUP, DISC, EXUDATE, HAEMORRHAGE), start=1):
        pixels = back.get_pixels_by_source_instance(
            source_sop_instance_uids=[photo.SOPInstanceUID],
            segment_numbers=[number],
            ignore_spatial_locations=True,
        )
        assert np.array_equal(pixels[0, :, :, 0].astype(bool), _mask(geometry)), number


def test_the_package_holds_the_photo_segs_and_seg_ref_names_them(tmp_path):
    inp, case = _input(tmp_path)
    root = write_package(inp, tmp_path / "out")
    assert verify(root) == []
    uid = case.series[0].series_uid
    read_seg = root / "annotations/dicom/SEG/reads/11.dcm"
    ref_seg = root / f"annotations/dicom/SEG/reference/{uid}.dcm"
    assert read_seg.is_file() and ref_seg.is_file()
    assert len(pydicom.dcmread(ref_seg).SegmentSequence) == 1  # the haemorrhage only
    table = (root / "annotations/reference_standard.csv").read_text(encoding="utf-8-sig")
    refs = {r["ref_finding_id"]: r for r in csv.DictReader(io.StringIO(table))}
    assert refs["r1r1"]["seg_ref"] == f"annotations/dicom/SEG/reference/{uid}.dcm"
    assert refs["r2r1"]["seg_ref"] == ""  # a point: no segment
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy is not installed")
    for path in (read_seg, ref_seg):
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [
            ln for ln in (result.stdout + result.stderr).splitlines() if ln.startswith("Error")
        ]
        assert errors == [], (path.name, errors)
