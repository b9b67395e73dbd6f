"""Values written in place of what de-identification removes or changes: empty
and dummy values per VR, shifted dates, ages, re-encoding of a changed element
like the raw one it replaces, and the identifying tokens a value contributes.
Pure pydicom (no Django).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.sequence import Sequence
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from .elements import as_list, text_of

TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "UR"})
BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
DUMMY_TEXT = "ANONYMIZED"
DUMMY_VALUES: dict[str, Any] = {
    "AE": DUMMY_TEXT,
    "AS": "000Y",
    "CS": DUMMY_TEXT,
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "PN": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "TM": "000000",
    "UC": DUMMY_TEXT,
    "UR": "",
    "UT": DUMMY_TEXT,
}


def empty_value(vr: str) -> Any:
    if vr == "SQ":
        return Sequence([])
    if vr in BYTES_VRS:
        return b""
    if vr in TEXT_VRS or vr in {"AS", "DA", "DS", "DT", "IS", "TM", "UI"}:
        return ""
    return None


def dummy_value(vr: str) -> Any:
    if vr in DUMMY_VALUES:
        return DUMMY_VALUES[vr]
    if vr in BYTES_VRS:
        return b"\x00\x00"
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "ANONYMIZED"
        item.CodingSchemeDesignator = "99REFSET"
        item.CodeMeaning = "Anonymized"
        return Sequence([item])
    return 0


def shift_date_string(value: str, days: int) -> str | None:
    """Shift the YYYYMMDD part of a DA or DT value; None when it is not a full date."""
    v = value.strip()
    if len(v) == 10 and v[4] == "." and v[7] == ".":  # ACR-NEMA style YYYY.MM.DD
        v = v.replace(".", "")
    head, rest = v[:8], v[8:]
    if len(head) != 8 or not head.isdigit():
        return None
    try:
        day = dt.datetime.strptime(head, "%Y%m%d").date()
        shifted = day + dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return shifted.strftime("%Y%m%d") + rest


def parse_date(value: Any) -> dt.date | None:
    v = text_of(value)[:8]
    if len(v) != 8 or not v.isdigit():
        return None
    try:
        return dt.datetime.strptime(v, "%Y%m%d").date()
    except ValueError:
        return None


def age_string(birth: dt.date, at: dt.date) -> str | None:
    if at < birth:
        return None
    years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
    if years >= 1:
        return f"{min(years, 999):03d}Y"
    months = (at.year - birth.year) * 12 + at.month - birth.month - (at.day < birth.day)
    if months >= 1:
        return f"{months:03d}M"
    return f"{(at - birth).days:03d}D"


def encode_value(elem: DataElement, like: RawDataElement, charset: Any) -> tuple[str, bytes] | None:
    """(VR, value bytes) of ``elem`` encoded as ``like`` was; None when pydicom would
    not write it as a plain defined-length value of that VR. (A sequence's value
    is its items, encoded like the rest of the file.)"""
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = like.is_implicit_VR
    buffer.is_little_endian = like.is_little_endian
    write_data_element(buffer, elem, charset)
    data = buffer.getvalue()
    if elem.is_undefined_length:
        return None
    if like.is_implicit_VR:
        header = 8
    elif data[4:6] != elem.VR.encode() or not like.is_little_endian:
        return None
    else:
        header = 12 if elem.VR in EXPLICIT_VR_LENGTH_32 else 8
    value = data[header:]
    length = int.from_bytes(
        data[header - 4 : header] if header == 12 or like.is_implicit_VR else data[6:8], "little"
    )
    if length != len(value):
        return None
    return elem.VR, value


def tokens_of(value: Any, vr: str) -> set[str]:
    """The identifying strings one element contributes (names split into parts)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "ignore")
    tokens = set()
    for item in as_list(value):
        text = text_of(item)
        parts = {text}
        if vr == "PN":
            for group in text.split("="):
                parts.add(group)
                parts.update(group.split("^"))
                parts.add(" ".join(p for p in group.split("^") if p))
        for part in parts:
            part = part.strip()
            if (part.isascii() and len(part) >= 3) or (not part.isascii() and len(part) >= 2):
                tokens.add(part)
    return tokens
