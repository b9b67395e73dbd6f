"""The photo manifest CSV: documented columns, every bad row named by line and column."""

from __future__ import annotations

import pytest

from annotation_server.imaging.photo import (
    COLUMNS,
    ManifestError,
    ManifestProblem,
    ManifestRow,
    parse_manifest,
)
from annotation_server.imaging.photo import manifest as manifest_module

GOOD = (
    "filename,patient_id,visit_id,laterality,site,camera\n"
    "WANG_XIAOMING_OD.jpg,ZY123,V1,OD,Donghai,Topcon TRC-NW400\n"
    "\n"
    "visit2/WANG_XIAOMING_OS.jpg,ZY123,V1,os,Donghai,Topcon TRC-NW400\n"
    "li.png,ZY456,V2,右眼,,\n"
)


def _problems(text: str | bytes) -> list[tuple[int, str, str]]:
    with pytest.raises(ManifestError) as err:
        parse_manifest(text)
    return [(p.line, p.column, p.problem) for p in err.value.problems]


def test_every_column_is_documented():
    for name in COLUMNS:
        assert f"\n{name} " in manifest_module.__doc__


def test_good_manifest():
    rows = parse_manifest(GOOD.encode("utf-8"))
    assert rows == [
        ManifestRow(2, "WANG_XIAOMING_OD.jpg", "ZY123", "V1", "OD", "Donghai", "Topcon TRC-NW400"),
        ManifestRow(4, "visit2/WANG_XIAOMING_OS.jpg", "ZY123", "V1", "OS", "Donghai",
                    "Topcon TRC-NW400"),
        ManifestRow(5, "li.png", "ZY456", "V2", "OD", "", ""),
    ]  # fmt: skip


def test_bom_gb18030_aliases_and_column_order():
    text = "Laterality,File Name,Study_ID,Patient_ID\r\nL,王.jpg,V9,ZY1\r\n"
    for data in (("\ufeff" + text).encode("utf-8"), text.encode("gb18030")):
        rows = parse_manifest(data)
        assert [(r.filename, r.patient_id, r.visit_id, r.laterality) for r in rows] == [
            ("王.jpg", "ZY1", "V9", "OS")
        ]


def test_header_problems():
    got = _problems("filename,patient,laterality,laterality\na.jpg,1,OD,OD\n")
    assert (1, "patient_id", "required column is missing") in got
    assert (1, "visit_id", "required column is missing") in got
    assert any(p[:2] == (1, "patient") and p[2].startswith("unknown column") for p in got)
    assert (1, "laterality", "column appears twice") in got
    assert all(line == 1 for line, _, _ in got)


def test_every_bad_row_is_named():
    text = (
        "filename,patient_id,visit_id,laterality\n"  # 1
        "a.jpg,P1,V1,OD\n"  # 2 fine
        "a.jpg,P1,V1,OS\n"  # 3 duplicate file
        "b.jpg,,V2,OD\n"  # 4 empty patient
        "c.jpg,P2,V3,OU\n"  # 5 bad laterality
        "/etc/d.jpg,P2,V3,OD\n"  # 6 absolute path
        "../e.jpg,P2,V3,OD\n"  # 7 escapes the upload
        "f.jpg,P3,V1,OD\n"  # 8 visit of another patient
        "g.jpg,P4,V4\n"  # 9 too few fields
        '"h\n.jpg",P5,V5,XX\n'  # 10-11: a quoted newline, bad laterality
        "i.jpg,P6,V6,OS\n"  # 12 fine
    )
    got = _problems(text)
    assert got == [
        (3, "filename", "listed twice (also on line 2)"),
        (4, "patient_id", "empty"),
        (5, "laterality", "'OU' is not OD or OS"),
        (6, "filename", "must be a relative name (no /, .. or drive)"),
        (7, "filename", "must be a relative name (no /, .. or drive)"),
        (8, "visit_id", "visit 'V1' belongs to another patient on line 2"),
        (9, "", "3 fields, the header has 4"),
        (10, "laterality", "'XX' is not OD or OS"),
    ]
    assert str(ManifestProblem(4, "patient_id", "empty")) == "line 4, column patient_id: empty"


def test_empty_and_undecodable():
    assert _problems("") == [(1, "", "the manifest is empty (no header row)")]
    assert _problems("filename,patient_id,visit_id,laterality\n") == [
        (2, "", "no photographs listed")
    ]
    bad = _problems(b"\xff\xfe\xfa\x00\x81")
    assert bad[0][0] == 1 and "not UTF-8 or GB18030" in bad[0][2]
