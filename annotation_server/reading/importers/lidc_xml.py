"""LIDC-IDRI style XML (LidcReadMessage) to plain data.

The element subset is the LIDC-IDRI XML schema's, as the LIDC files and
pylidc use it (namespace http://www.nih.gov, or none):

    LidcReadMessage
      ResponseHeader / SeriesInstanceUid, StudyInstanceUID
      readingSession*                      one reader's read
        servicingRadiologistID             the reader's (anonymised) id
        unblindedReadNodule*               a nodule
          noduleID
          characteristics / subtlety, internalStructure, calcification,
              sphericity, margin, lobulation, spiculation, texture, malignancy
          roi*                             one outline on one image
            imageZposition, imageSOP_UID
            inclusion                      TRUE: the nodule; FALSE: a hole in it
            edgeMap* / xCoord, yCoord      pixel column, row
        nonNodule*                         a marked non-nodule
          nonNoduleID, imageZposition, imageSOP_UID, locus / xCoord, yCoord

A nodule whose every roi holds one edgeMap is LIDC's small nodule (< 3 mm),
marked by its centre. Chest-radiograph sessions (CXRreadingSession) are not
reads of a CT series and are counted, not read. Parsing goes through
defusedxml: entity expansion, external entities and DTDs are refused.
The service maps this to the project's instances and schema; the messages here
are translated (they reach the manager's report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from django.utils.translation import gettext

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


class LidcFormatError(ValueError):
    """The file is not well-formed XML, or not a LidcReadMessage."""


@dataclass
class Roi:
    z: float | None
    sop_uid: str
    inclusion: bool
    points: list[tuple[float, float]]


@dataclass
class Nodule:
    nodule_id: str
    characteristics: dict[str, str] = field(default_factory=dict)
    rois: list[Roi] = field(default_factory=list)

    @property
    def is_small(self) -> bool:
        """LIDC's < 3 mm nodule: every roi is a single point."""
        return bool(self.rois) and all(len(r.points) == 1 for r in self.rois)


@dataclass
class NonNodule:
    non_nodule_id: str
    z: float | None
    sop_uid: str
    point: tuple[float, float] | None


@dataclass
class Session:
    reader_id: str
    nodules: list[Nodule] = field(default_factory=list)
    non_nodules: list[NonNodule] = field(default_factory=list)


@dataclass
class Document:
    series_uid: str
    study_uid: str
    sessions: list[Session] = field(default_factory=list)
    skipped_cxr_sessions: int = 0
    problems: list[str] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text(el: Element | None, name: str) -> str:
    c = _child(el, name) if el is not None else None
    return (c.text or "").strip() if c is not None else ""


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _point(el: Element, problems: list[str], where: str) -> tuple[float, float] | None:
    x, y = _float(_text(el, "xCoord")), _float(_text(el, "yCoord"))
    if x is None or y is None:
        problems.append(
            gettext("%(where)s: a point without numeric xCoord and yCoord") % {"where": where}
        )
        return None
    return (x, y)


def parse(data: bytes) -> Document:
    """Parse one LidcReadMessage. Raises LidcFormatError for malformed XML or
    another root; collects per-element problems (missing coordinates...) in
    `Document.problems`, which the importer treats as errors of the file."""
    try:
        root = fromstring(data)
    except ParseError as exc:
        raise LidcFormatError(gettext("Malformed XML: %(error)s") % {"error": exc}) from None
    except DefusedXmlException as exc:
        raise LidcFormatError(
            gettext("Refused XML construct: %(name)s") % {"name": exc.__class__.__name__}
        ) from None
    if _local(root.tag) != "LidcReadMessage":
        raise LidcFormatError(
            gettext("The root element is %(tag)s, not LidcReadMessage.") % {"tag": _local(root.tag)}
        )
    header = _child(root, "ResponseHeader")
    doc = Document(
        series_uid=_text(header, "SeriesInstanceUid") or _text(header, "SeriesInstanceUID"),
        study_uid=_text(header, "StudyInstanceUID") or _text(header, "StudyInstanceUid"),
    )
    doc.skipped_cxr_sessions = len(_children(root, "CXRreadingSession"))
    for s_index, s_el in enumerate(_children(root, "readingSession"), start=1):
        session = Session(reader_id=_text(s_el, "servicingRadiologistID") or f"session {s_index}")
        for n_el in _children(s_el, "unblindedReadNodule"):
            nodule = Nodule(
                nodule_id=_text(n_el, "noduleID") or f"nodule {len(session.nodules) + 1}"
            )
            where = f"reader {session.reader_id}, {nodule.nodule_id}"
            chars = _child(n_el, "characteristics")
            if chars is not None:
                for name in CHARACTERISTICS:
                    value = _text(chars, name)
                    if value:
                        nodule.characteristics[name] = value
            for r_el in _children(n_el, "roi"):
                points = [
                    p
                    for e in _children(r_el, "edgeMap")
                    if (p := _point(e, doc.problems, where)) is not None
                ]
                inclusion = _text(r_el, "inclusion").upper() != "FALSE"
                roi = Roi(
                    z=_float(_text(r_el, "imageZposition")),
                    sop_uid=_text(r_el, "imageSOP_UID"),
                    inclusion=inclusion,
                    points=points,
                )
                if not points:
                    doc.problems.append(
                        gettext("%(where)s: an roi without edgeMap points") % {"where": where}
                    )
                    continue
                if roi.z is None and not roi.sop_uid:
                    doc.problems.append(
                        gettext("%(where)s: an roi without imageSOP_UID or imageZposition")
                        % {"where": where}
                    )
                    continue
                nodule.rois.append(roi)
            if not nodule.rois:
                doc.problems.append(gettext("%(where)s: no usable roi") % {"where": where})
                continue
            session.nodules.append(nodule)
        for k, nn_el in enumerate(_children(s_el, "nonNodule"), start=1):
            nn_id = _text(nn_el, "nonNoduleID") or f"non-nodule {k}"
            where = f"reader {session.reader_id}, {nn_id}"
            locus = _child(nn_el, "locus")
            point = _point(locus, doc.problems, where) if locus is not None else None
            if locus is None:
                doc.problems.append(gettext("%(where)s: no locus") % {"where": where})
            nn = NonNodule(
                non_nodule_id=nn_id,
                z=_float(_text(nn_el, "imageZposition")),
                sop_uid=_text(nn_el, "imageSOP_UID"),
                point=point,
            )
            if point is not None:
                session.non_nodules.append(nn)
        doc.sessions.append(session)
    return doc
