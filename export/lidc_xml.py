"""LIDC-IDRI style XML (LidcReadMessage), one file per series.

The layout follows the LIDC-IDRI XML that pylidc and the LIDC tools read:
a ResponseHeader naming the series and study, then one `readingSession` per
read with `servicingRadiologistID` (the reader's pseudonym), and inside it

- `unblindedReadNodule` per nodule-type finding: `noduleID`, the nine
  `characteristics` (written when the schema has them, under LIDC's names),
  and one `roi` per slice with `imageZposition`, `imageSOP_UID`,
  `inclusion` TRUE and the outline as `edgeMap` points (xCoord = column,
  yCoord = row, integer pixels as in LIDC). A point finding is LIDC's small
  nodule: one roi with one edgeMap and no characteristics.
- `nonNodule` per finding of another type: `nonNoduleID`, `imageZposition`,
  `imageSOP_UID` and a `locus` point at its centre slice.

`lidc_xml/<series_uid>.xml` holds the reads of the protocol's last phase (the
reads the reference was settled from, as LIDC's unblinded reads); earlier
phases go to `lidc_xml/phase<N>/<series_uid>.xml`. Ellipses and boxes are
written as polygons (36 and 4 points).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

from export.model import FindingRecord, PackageInput, ReadRecord, SeriesRecord

NS = "http://www.nih.gov"
CHARACTERISTICS = (
    "subtlety",
    "internalStructure",
    "calcification",
    "sphericity",
    "margin",
    "lobulation",
    "spiculation",
    "texture",
    "malignancy",
)
NODULE_TYPES = frozenset({"nodule", "micronodule", "small_nodule"})


def snake(name: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in name)


def outline(kind: str, points: list[list[float]]) -> list[tuple[int, int]]:
    """The shape as a closed list of integer pixel points."""
    if kind == "ellipse" and len(points) >= 2:
        (c0, r0), (c1, r1) = points[0], points[1]
        cc, rc, a, b = (c0 + c1) / 2, (r0 + r1) / 2, abs(c1 - c0) / 2, abs(r1 - r0) / 2
        pts = [
            (cc + a * math.cos(2 * math.pi * k / 36), rc + b * math.sin(2 * math.pi * k / 36))
            for k in range(36)
        ]
    elif kind == "box" and len(points) >= 2:
        (c0, r0), (c1, r1) = points[0], points[1]
        pts = [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]
    else:
        pts = [(p[0], p[1]) for p in points]
    out: list[tuple[int, int]] = []
    for c, r in pts:
        q = (int(round(c)), int(round(r)))
        if not out or out[-1] != q:
            out.append(q)
    return out


def _text(parent: ET.Element, tag: str, value: Any) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = str(value)
    return el


def _z(series: SeriesRecord, slice_index: int) -> tuple[str, str]:
    for inst in series.instances:
        if inst.slice_index == slice_index:
            z = inst.position[2] if inst.position else float(slice_index)
            return f"{z:.6g}", inst.sop_instance_uid
    return f"{float(slice_index):.6g}", ""


def _nodule(session: ET.Element, f: FindingRecord, n: int, series: SeriesRecord) -> None:
    node = ET.SubElement(session, "unblindedReadNodule")
    _text(node, "noduleID", f.finding_id or f"Nodule {n:03d}")
    kind = f.geometry.get("kind", "")
    if kind != "point":
        chars = [(c, f.attributes.get(snake(c))) for c in CHARACTERISTICS]
        if any(v is not None for _, v in chars):
            el = ET.SubElement(node, "characteristics")
            for name, value in chars:
                if value is not None:
                    _text(el, name, value)
    for shape in sorted(f.geometry.get("shapes", []), key=lambda s: s["slice_index"]):
        roi = ET.SubElement(node, "roi")
        z, sop = _z(series, shape["slice_index"])
        _text(roi, "imageZposition", z)
        _text(roi, "imageSOP_UID", sop)
        _text(roi, "inclusion", "TRUE")
        for col, row in outline(kind, shape.get("points") or []):
            edge = ET.SubElement(roi, "edgeMap")
            _text(edge, "xCoord", col)
            _text(edge, "yCoord", row)


def _non_nodule(session: ET.Element, f: FindingRecord, series: SeriesRecord) -> None:
    shapes = sorted(f.geometry.get("shapes", []), key=lambda s: s["slice_index"])
    if not shapes:
        return
    mid = shapes[len(shapes) // 2]
    pts = mid.get("points") or [[0, 0]]
    col = sum(p[0] for p in pts) / len(pts)
    row = sum(p[1] for p in pts) / len(pts)
    node = ET.SubElement(session, "nonNodule")
    _text(node, "nonNoduleID", f.finding_id)
    z, sop = _z(series, mid["slice_index"])
    _text(node, "imageZposition", z)
    _text(node, "imageSOP_UID", sop)
    locus = ET.SubElement(node, "locus")
    _text(locus, "xCoord", int(round(col)))
    _text(locus, "yCoord", int(round(row)))


def document(inp: PackageInput, series: SeriesRecord, reads: list[ReadRecord]) -> bytes:
    ET.register_namespace("", NS)
    root = ET.Element(f"{{{NS}}}LidcReadMessage", {"uid": f"{inp.dataset_id}-{inp.version}"})
    header = ET.SubElement(root, "ResponseHeader")
    _text(header, "Version", "1.8.1")
    _text(header, "MessageId", f"{inp.dataset_id}_v{inp.version}")
    _text(header, "DateRequest", inp.frozen_at[:10])
    _text(header, "TimeRequest", inp.frozen_at[11:19])
    _text(header, "TaskDescription", f"RefSet {inp.dataset_id} v{inp.version}")
    _text(header, "SeriesInstanceUid", series.series_uid)
    _text(header, "StudyInstanceUID", series.study_uid)
    _text(header, "ResponseComments", inp.tool_version)
    for read in sorted(reads, key=lambda r: (r.reader_pseudo_id, r.read_id)):
        session = ET.SubElement(root, "readingSession")
        _text(session, "annotationVersion", "3.12")
        _text(session, "servicingRadiologistID", read.reader_pseudo_id)
        for n, f in enumerate(sorted(read.findings, key=lambda f: f.finding_id), start=1):
            if f.finding_type in NODULE_TYPES:
                _nodule(session, f, n, series)
            else:
                _non_nodule(session, f, series)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write(out, inp: PackageInput, prefix: str = "") -> None:
    by_series = inp.series_by_uid()
    last = max((r.phase for r in inp.reads), default=1)
    grouped: dict[tuple[int, str], list[ReadRecord]] = {}
    for read in inp.reads:
        grouped.setdefault((read.phase, read.series_uid), []).append(read)
    for (phase, series_uid), reads in sorted(grouped.items()):
        series = by_series.get(series_uid)
        if series is None:
            continue
        folder = prefix if phase == last else f"{prefix}phase{phase}/"
        out.write_bytes(f"{folder}{series_uid}.xml", document(inp, series, reads))
