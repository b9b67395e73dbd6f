"""DICOM JSON (PS3.18 F.2) for QIDO-RS results, and QIDO query matching.

Results are built from the index tables (de-identified), not from the files.
"""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Q

from annotation_server.pagination import MAX_OFFSET, bounded_int

# Query keys (keyword or tag) -> the index field each level matches on.
KEYWORDS = {
    "0020000D": "StudyInstanceUID",
    "0020000E": "SeriesInstanceUID",
    "00080018": "SOPInstanceUID",
    "00100020": "PatientID",
    "00080060": "Modality",
    "00080061": "ModalitiesInStudy",
    "00080016": "SOPClassUID",
}
UID_KEYS = {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"}
CONTROL_KEYS = {"limit", "offset", "includefield", "fuzzymatching"}
# The longest value a matched attribute holds (UI and LO: 64 characters). A longer
# match value can match nothing, and 5,000 wildcards made a regular expression
# PostgreSQL refused as too complex (500, found by the API fuzz).
MAX_VALUE_LENGTH = 64


def attr(vr: str, *values: Any) -> dict[str, Any]:
    """One DICOM JSON attribute; no values -> present but empty."""
    values = tuple(v for v in values if v not in (None, ""))
    if not values:
        return {"vr": vr}
    if vr == "PN":
        return {"vr": vr, "Value": [{"Alphabetic": str(v)} for v in values]}
    return {"vr": vr, "Value": list(values)}


def _date(value) -> str | None:
    return value.strftime("%Y%m%d") if value else None


def study_json(
    study: dict[str, Any], modalities: list[str], series: int, instances: int, url: str
) -> dict[str, Any]:
    return {
        "00080005": attr("CS", "ISO_IR 192"),
        "00080020": attr("DA", _date(study["study_date"])),
        "00080030": attr("TM"),
        "00080050": attr("SH"),
        "00080061": attr("CS", *sorted(set(modalities))),
        "00081030": attr("LO", study["description"]),
        "00081190": attr("UR", url),
        "00100010": attr("PN", study["patient_pseudo_id"]),
        "00100020": attr("LO", study["patient_pseudo_id"]),
        "00100040": attr("CS", study["patient_sex"]),
        "0020000D": attr("UI", study["study_uid"]),
        "00200010": attr("SH"),
        "00201206": attr("IS", series),
        "00201208": attr("IS", instances),
    }


def series_json(series: dict[str, Any], instances: int, url: str) -> dict[str, Any]:
    return {
        "00080005": attr("CS", "ISO_IR 192"),
        "00080060": attr("CS", series["modality"]),
        "0008103E": attr("LO", series["description"]),
        "00081190": attr("UR", url),
        "00180015": attr("CS", series["body_part"]),
        "0020000D": attr("UI", series["study__study_uid"]),
        "0020000E": attr("UI", series["series_uid"]),
        "00200011": attr("IS"),
        "00201209": attr("IS", instances),
    }


def instance_json(row: dict[str, Any], url: str) -> dict[str, Any]:
    return {
        "00080016": attr("UI", row["sop_class_uid"]),
        "00080018": attr("UI", row["sop_instance_uid"]),
        "00080060": attr("CS", row["series__modality"]),
        "00081190": attr("UR", url),
        "0020000D": attr("UI", row["series__study__study_uid"]),
        "0020000E": attr("UI", row["series__series_uid"]),
        "00200013": attr("IS", row["instance_number"]),
        "00280008": attr("IS", row["frames"]),
        "00280010": attr("US", row["rows"]),
        "00280011": attr("US", row["columns"]),
    }


class QueryError(ValueError):
    pass


def query_terms(params) -> dict[str, list[str]]:
    """{keyword: [values]} from QIDO query parameters (tags or keywords, comma lists).
    QueryError for a value longer than any attribute holds."""
    terms: dict[str, list[str]] = {}
    for key in params:
        if key in CONTROL_KEYS:
            continue
        keyword = KEYWORDS.get(key.upper(), key)
        values = [v.strip() for raw in params.getlist(key) for v in raw.split(",") if v.strip()]
        if any(len(v) > MAX_VALUE_LENGTH for v in values):
            raise QueryError(f"{key}: match values have at most {MAX_VALUE_LENGTH} characters.")
        if values:
            terms.setdefault(keyword, []).extend(values)
    return terms


def _match(field: str, values: list[str], *, uid: bool) -> Q:
    q = Q()
    for value in values:
        if not uid and ("*" in value or "?" in value):
            value = re.sub(r"\*+", "*", value)  # ** matches what * does
            pattern = (
                "^"
                + "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
                + "$"
            )
            q |= Q(**{f"{field}__regex": pattern})
        else:
            q |= Q(**{field: value})
    return q


def filter_by(terms: dict[str, list[str]], fields: dict[str, str]) -> Q:
    """A filter over the terms this level knows (`fields`: keyword -> ORM path)."""
    q = Q()
    for keyword, values in terms.items():
        if keyword in fields:
            q &= _match(fields[keyword], values, uid=keyword in UID_KEYS)
    return q


def paging(params) -> tuple[int, int | None]:
    """QIDO-RS offset and limit: non-negative integers, bounded (a 40-digit value
    once reached the database and answered 500)."""
    try:
        offset = bounded_int(params.get("offset") or "0", "offset", MAX_OFFSET)
        limit = bounded_int(params["limit"], "limit", MAX_OFFSET) if params.get("limit") else None
    except ValueError as exc:
        raise QueryError(str(exc)) from exc
    return offset, limit
