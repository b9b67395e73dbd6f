"""De-identification engine: PS3.15 Basic Profile with RefSet's options, keyed by a secret.

Pure pydicom + stdlib (no Django). Every replacement is derived from the project secret with
HMAC-SHA256, so the same original always gives the same replacement within a project and no
database is needed to stay consistent across files, imports and workers:

- UIDs: ``2.25.<decimal>`` of a 128-bit value shaped like an RFC 9562 version-8 UUID;
- patient pseudonyms: ``P`` + 10 base32 characters;
- date offsets: whole days in ``-3650..-1`` per patient (times are kept).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, UID_dictionary
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from .profile import (
    CODE_BASIC_PROFILE,
    CODE_CLEAN_DESCRIPTORS,
    CODE_MODIFIED_DATES,
    DATE_VRS,
    Tag,
    is_curve_or_overlay,
    resolve_action,
)

__all__ = [
    "DeidError",
    "DeidOptions",
    "DeidResult",
    "Deidentifier",
    "Mapping",
    "burned_in_risk",
    "keeps_uid",
]

MIN_SHIFT_DAYS = 1
MAX_SHIFT_DAYS = 3650

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
SCRUB_MARK = "***"

# UI attributes that name a class, a syntax or an organisation's scheme, not an instance.
KEEP_UID_KEYWORDS = frozenset(
    {
        "CodingSchemeUID",
        "ContextGroupExtensionCreatorUID",
        "ContextUID",
        "MappingResourceUID",
        "ReferencedTransferSyntaxUIDInFile",
    }
)

PATIENT_NAME: Tag = (0x0010, 0x0010)
PATIENT_ID: Tag = (0x0010, 0x0020)
STUDY_UID: Tag = (0x0020, 0x000D)
SERIES_UID: Tag = (0x0020, 0x000E)
SOP_UID: Tag = (0x0008, 0x0018)
UID_KINDS: dict[Tag, str] = {STUDY_UID: "study_uid", SERIES_UID: "series_uid", SOP_UID: "sop_uid"}

# SOP classes that usually carry burned-in text or a recognisable face.
_SC = "1.2.840.10008.5.1.4.1.1.7"
RISKY_SOP_CLASSES: dict[str, str] = {
    _SC: "Secondary Capture",
    _SC + ".1": "Multi-frame Single Bit Secondary Capture",
    _SC + ".2": "Multi-frame Grayscale Byte Secondary Capture",
    _SC + ".3": "Multi-frame Grayscale Word Secondary Capture",
    _SC + ".4": "Multi-frame True Color Secondary Capture",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound (retired)",
    "1.2.840.10008.5.1.4.1.1.6.1": "Ultrasound",
    "1.2.840.10008.5.1.4.1.1.6.2": "Enhanced Ultrasound Volume",
    "1.2.840.10008.5.1.4.1.1.6.3": "Photoacoustic",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame (retired)",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame",
    "1.2.840.10008.5.1.4.1.1.14.1": "Intravascular OCT (presentation)",
    "1.2.840.10008.5.1.4.1.1.14.2": "Intravascular OCT (processing)",
    "1.2.840.10008.5.1.4.1.1.104.1": "Encapsulated PDF",
    "1.2.840.10008.5.1.4.1.1.104.2": "Encapsulated CDA",
}
RISKY_SOP_PREFIXES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.77.1": "Visible Light (photograph / video)",
}
RISKY_MODALITIES: dict[str, str] = {
    "US": "ultrasound",
    "IVUS": "intravascular ultrasound",
    "SC": "secondary capture",
    "XC": "external camera photograph",
    "ES": "endoscopy",
    "GM": "general microscopy",
    "OP": "ophthalmic photograph",
    "DOC": "document",
    "VIDEO": "video",
}
SCREEN_IMAGE_TYPES = ("SCREEN SAVE", "SCREENSHOT", "SCREEN CAPTURE", "CAPTURE", "DOSE REPORT")
SCREEN_DESCRIPTIONS = ("dose report", "screen save", "screen capture", "patient protocol")


class DeidError(ValueError):
    """The dataset cannot be de-identified safely (unreadable or malformed attributes)."""


@dataclass(frozen=True)
class DeidOptions:
    clean_descriptors: bool = True
    retain_longitudinal_modified_dates: bool = True


@dataclass
class Mapping:
    kind: (
        str  # patient_id | patient_name | study_uid | series_uid | sop_uid | other_uid | date_shift
    )
    original: str
    replacement: str


@dataclass
class DeidResult:
    dataset: Dataset
    mappings: list[Mapping]
    quarantine_reason: str | None
    removed: int


def keeps_uid(keyword: str, value: str) -> bool:
    """True for UIDs that identify no instance: registered DICOM UIDs and class/syntax UIDs."""
    if value in UID_dictionary:
        return True
    return (
        keyword in KEEP_UID_KEYWORDS
        or keyword.endswith("ClassUID")
        or keyword.endswith("TransferSyntaxUID")
    )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def burned_in_risk(ds: Dataset) -> str | None:
    """Why pixel data may show identifying text or features, or None.

    Flags BurnedInAnnotation / RecognizableVisualFeatures YES, SOP classes and modalities
    that usually carry burned-in text (secondary capture, ultrasound, video and photographs,
    documents) and screen captures (ImageType SCREEN SAVE-like values, SECONDARY/DERIVED
    images with a capture ConversionType, dose-report descriptions).
    """
    if _text(peek(ds, "BurnedInAnnotation", "")).upper() == "YES":
        return "BurnedInAnnotation is YES"
    if _text(peek(ds, "RecognizableVisualFeatures", "")).upper() == "YES":
        return "RecognizableVisualFeatures is YES"
    sop_class = _text(peek(ds, "SOPClassUID", ""))
    if sop_class in RISKY_SOP_CLASSES:
        return f"SOP class {RISKY_SOP_CLASSES[sop_class]} often carries burned-in text"
    for prefix, name in RISKY_SOP_PREFIXES.items():
        if sop_class.startswith(prefix + "."):
            return f"SOP class {name} often shows identifying text or features"
    modality = _text(peek(ds, "Modality", "")).upper()
    if modality in RISKY_MODALITIES:
        return f"modality {modality} ({RISKY_MODALITIES[modality]}) often carries burned-in text"
    image_type = [str(v).upper() for v in _as_list(peek(ds, "ImageType", []))]
    for marker in SCREEN_IMAGE_TYPES:
        if any(marker in v for v in image_type):
            return f"ImageType {marker} is a screen capture"
    conversion = _text(peek(ds, "ConversionType", "")).upper()
    if conversion and ("SECONDARY" in image_type or "DERIVED" in image_type or not image_type):
        return f"secondary image with ConversionType {conversion}"
    descriptions = " ".join(
        _text(peek(ds, k, "")).lower() for k in ("SeriesDescription", "StudyDescription")
    )
    for marker in SCREEN_DESCRIPTIONS:
        if marker in descriptions:
            return f"description mentions {marker!r} (screen capture)"
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def _tag(elem: DataElement) -> Tag:
    return (elem.tag.group, elem.tag.element)


def get_item(ds: Dataset, tag: int) -> DataElement | RawDataElement | None:
    """``ds.get_item(tag)`` for a tag already an int or BaseTag, without pydicom's
    ``Tag()`` conversion: the walks over every element of every file call it most."""
    elem = ds._dict.get(tag)
    if elem is not None and isinstance(elem, RawDataElement) and elem.value is None:
        return ds.get_item(tag)  # deferred or empty: pydicom's own handling
    return elem


def peek(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword, default)`` that leaves a raw element raw in ``ds``.

    Reading an attribute through pydicom decodes it for good, and a decoded
    element is re-encoded when the file is written; de-identification and ingest
    only look at most of what they read, so they decode a copy.
    """
    tag = tag_for_keyword(keyword)
    if tag is None:
        return ds.get(keyword, default)
    elem = get_item(ds, tag)
    if elem is None:
        return default
    if elem.is_raw:
        if elem.VR in (None, "UN", "SQ") or elem.value is None:
            return ds.get(keyword, default)  # decoded in place, as pydicom does
        key = None
        if elem.VR in _PEEK_MEMO_VRS and len(elem.value) <= 64:
            key = (int(tag), elem.VR, elem.value, elem.is_little_endian)
            if key in _peek_memo:
                return _peek_memo[key]
        charset = (
            default_encoding
            if tag == 0x00080005
            else ds.original_character_set or ds._character_set
        )
        elem = convert_raw_data_element(elem, encoding=charset, ds=ds)
        if key is not None:
            if len(_peek_memo) >= 4096:
                _peek_memo.clear()
            _peek_memo[key] = elem.value
    return elem.value


# Numbers and codes (not text: no character set, nothing identifying) that a
# series repeats slice after slice, decoded once: geometry, rescale, windows, sizes.
# Callers only read what peek returns.
_PEEK_MEMO_VRS = frozenset({"DS", "IS", "CS", "US", "SS", "UL", "SL", "FL", "FD"})
_peek_memo: dict[tuple, Any] = {}


def _element(ds: Dataset, tag: BaseTag) -> tuple[DataElement | RawDataElement, str]:
    """The element at ``tag``, still raw when its VR is known without decoding it.

    A raw element's VR is what decoding would give, except when it is unknown
    (implicit VR: the data dictionary's VR, when it is one VR, is what decoding
    would use) or UN (which pydicom replaces with the dictionary's VR): the rest
    are decoded here, so the VR that picks the action is the same either way.
    """
    elem = get_item(ds, tag)
    vr = elem.VR
    if elem.is_raw and vr is None and not tag.is_private and tag.element != 0:
        try:  # implicit VR: what pydicom's decoding would look up (unambiguous VRs only)
            known = dictionary_VR(tag)
        except KeyError:
            known = None
        if known is not None and len(known) == 2 and known != "UN":
            return elem._replace(VR=known), known
    if elem.is_raw and (vr is None or vr == "UN"):
        elem = ds[tag]
        vr = elem.VR
    return elem, vr


def _empty_value(vr: str) -> Any:
    if vr == "SQ":
        return Sequence([])
    if vr in BYTES_VRS:
        return b""
    if vr in TEXT_VRS or vr in {"AS", "DA", "DS", "DT", "IS", "TM", "UI"}:
        return ""
    return None


def _dummy_value(vr: str) -> Any:
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


def _shift_date_string(value: str, days: int) -> str | None:
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


def _parse_date(value: Any) -> dt.date | None:
    v = _text(value)[:8]
    if len(v) != 8 or not v.isdigit():
        return None
    try:
        return dt.datetime.strptime(v, "%Y%m%d").date()
    except ValueError:
        return None


def _age_string(birth: dt.date, at: dt.date) -> str | None:
    if at < birth:
        return None
    years = at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))
    if years >= 1:
        return f"{min(years, 999):03d}Y"
    months = (at.year - birth.year) * 12 + at.month - birth.month - (at.day < birth.day)
    if months >= 1:
        return f"{months:03d}M"
    return f"{(at - birth).days:03d}D"


def _encode_value(
    elem: DataElement, like: RawDataElement, charset: Any
) -> tuple[str, bytes] | None:
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


def _tokens_of(value: Any, vr: str) -> set[str]:
    """The identifying strings one element contributes (names split into parts)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "ignore")
    tokens = set()
    for item in _as_list(value):
        text = _text(item)
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


MEMO_MAX_VALUE = 1024  # bytes: longer values are processed every time, not remembered
MEMO_MAX_ENTRIES = 50_000


def _charset_key(ds: Dataset) -> str | tuple[str, ...]:
    charset = ds._character_set
    return charset if isinstance(charset, str) else tuple(charset)


def _memo_key(charset: Any, tag: BaseTag, vr: str, elem: Any) -> tuple | None:
    """What a raw element's de-identified outcome depends on besides the context:
    its tag, VR, bytes, their encoding and the dataset's character set (a
    sequence's items are in its bytes). None when the element is not a short raw
    value of defined length (not remembered)."""
    if not elem.is_raw or elem.length == 0xFFFFFFFF:
        return None
    value = elem.value
    if not isinstance(value, bytes) or len(value) > MEMO_MAX_VALUE:
        return None
    return (int(tag), vr, value, elem.is_implicit_VR, elem.is_little_endian, charset)


@dataclass(frozen=True)
class _Outcome:
    """A remembered de-identification of one raw element: its new encoded value
    (None when it is removed), the mappings it records and the count it adds."""

    raw: tuple[str, bytes] | None
    mappings: tuple[Mapping, ...]
    removed: int


@dataclass
class _Context:
    """State of one ``apply`` call."""

    patient_key: str
    pseudonym: str
    shift_days: int
    scrub_tokens: list[tuple[str, re.Pattern[str]]]
    mappings: dict[tuple[str, str], Mapping] = field(default_factory=dict)
    removed: int = 0

    def record(self, kind: str, original: str, replacement: str) -> None:
        self.mappings.setdefault((kind, original), Mapping(kind, original, replacement))


@functools.lru_cache(maxsize=4096)
def _token_pattern(token: str) -> re.Pattern[str]:
    """The pattern that finds an identifying token inside a descriptor (cached:
    every file of a series repeats the same patient's tokens)."""
    escaped = re.escape(token)
    if token.isascii():
        return re.compile(rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])", re.IGNORECASE)
    return re.compile(escaped)


class Deidentifier:
    """De-identifies datasets for one project, keyed by that project's secret."""

    def __init__(self, secret: bytes, options: DeidOptions = DeidOptions()) -> None:
        if not isinstance(secret, (bytes, bytearray)) or not secret:
            raise ValueError("secret must be non-empty bytes")
        self._secret = bytes(secret)
        self.options = options
        self._uid_cache: dict[str, str] = {}
        self._actions: dict[tuple[Tag, str], str] = {}
        self._memos: dict[tuple, dict] = {}
        self._token_memo: dict[tuple, tuple[str, ...]] = {}
        self._marks: dict[tuple, list[tuple[BaseTag, str, bytes]]] = {}

    # -- derived identifiers -------------------------------------------------------------

    def _digest(self, domain: str, value: str) -> bytes:
        msg = domain.encode("ascii") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The project's replacement for a UID: ``2.25.`` + a UUIDv8-shaped HMAC value."""
        key = original.strip().rstrip("\x00")
        cached = self._uid_cache.get(key)
        if cached is None:
            raw = bytearray(self._digest("uid", key)[:16])
            raw[6] = (raw[6] & 0x0F) | 0x80  # version 8 (custom)
            raw[8] = (raw[8] & 0x3F) | 0x80  # RFC variant
            cached = f"2.25.{int.from_bytes(raw, 'big')}"
            self._uid_cache[key] = cached
        return cached

    def pseudonym(self, patient_id: str) -> str:
        """``P`` + 10 upper-case base32 characters derived from the patient id."""
        digest = self._digest("patient", patient_id.strip())
        return "P" + base64.b32encode(digest).decode("ascii")[:10]

    def date_shift_days(self, patient_id: str) -> int:
        """Whole days (``-3650..-1``) added to every date of this patient."""
        digest = self._digest("date-shift", patient_id.strip())
        span = MAX_SHIFT_DAYS - MIN_SHIFT_DAYS + 1
        return -(MIN_SHIFT_DAYS + int.from_bytes(digest[:8], "big") % span)

    def patient_key(self, ds: Dataset) -> str:
        """What pseudonym and date shift derive from: PatientID, else the study UID."""
        pid = _text(peek(ds, "PatientID", ""))
        if pid:
            return pid
        study = _text(peek(ds, "StudyInstanceUID", ""))
        if study:
            return "study:" + study
        return "sop:" + _text(peek(ds, "SOPInstanceUID", ""))

    # -- the profile -----------------------------------------------------------------------

    def apply(self, ds: Dataset, *, in_place: bool = False) -> DeidResult:
        """De-identify a copy of ``ds`` (``ds`` itself is not changed), or ``ds``
        itself with ``in_place=True`` (the ingest pipeline, which owns the parsed
        dataset, saves the deep copy: a third of the engine's time)."""
        if not isinstance(ds, Dataset):
            raise DeidError(f"expected a pydicom Dataset, got {type(ds).__name__}")
        try:
            return self._apply(ds, in_place)
        except DeidError:
            raise
        except Exception as exc:  # malformed values pydicom cannot convert
            raise DeidError(f"cannot de-identify dataset: {type(exc).__name__}: {exc}") from exc

    def _apply(self, original: Dataset, in_place: bool = False) -> DeidResult:
        reason = burned_in_risk(original)
        out = original if in_place else copy.deepcopy(original)
        key = self.patient_key(out)
        ctx = _Context(
            patient_key=key,
            pseudonym=self.pseudonym(key),
            shift_days=self.date_shift_days(key),
            scrub_tokens=self._scrub_tokens(out) if self.options.clean_descriptors else [],
        )
        ctx.record("patient_id", _text(peek(out, "PatientID", "")), ctx.pseudonym)
        ctx.record("patient_name", _text(peek(out, "PatientName", "")), ctx.pseudonym)
        if self.options.retain_longitudinal_modified_dates:
            ctx.record("date_shift", key, str(ctx.shift_days))
        self._fill_patient_age(out)
        old_sop = _text(peek(out, "SOPInstanceUID", ""))
        self._process(out, ctx, scrub_all=False, memo=self._memo_for(out, ctx))
        for keyword in ("PatientID", "PatientName"):  # Type 2: always present, pseudonymous
            if keyword not in out or not _text(peek(out, keyword)):
                setattr(out, keyword, ctx.pseudonym)
        self._process_file_meta(out, old_sop, ctx)
        self._mark_raw(out)
        return DeidResult(out, list(ctx.mappings.values()), reason, ctx.removed)

    def _memo_for(self, ds: Dataset, ctx: _Context) -> dict:
        """Remembered outcomes for this context: patient (pseudonym, date shift),
        the descriptor tokens being cleaned and the character set; all else an
        element's outcome depends on is in its own key."""
        charset = ds._character_set
        key = (
            ctx.patient_key,
            tuple(token for token, _ in ctx.scrub_tokens),
            charset if isinstance(charset, str) else tuple(charset),
        )
        memo = self._memos.get(key)
        if memo is None:
            if len(self._memos) >= 64:
                self._memos.clear()
            memo = self._memos[key] = {}
        return memo

    def _fill_patient_age(self, ds: Dataset) -> None:
        if _text(peek(ds, "PatientAge", "")):
            return
        birth = _parse_date(peek(ds, "PatientBirthDate", ""))
        if birth is None:
            return
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            at = _parse_date(peek(ds, keyword, ""))
            if at is not None:
                age = _age_string(birth, at)
                if age is not None:
                    ds.PatientAge = age
                return

    def _mark_raw(self, ds: Dataset) -> None:
        """``_mark``, with its elements encoded once per encoding and character set
        and inserted already encoded (they are the same in every file)."""
        encoding = ds.original_encoding
        charset = ds._character_set
        key = (encoding, charset if isinstance(charset, str) else tuple(charset))
        if None in encoding:
            self._mark(ds)
            return
        marks = self._marks.get(key)
        if marks is None:
            scratch = Dataset()
            self._mark(scratch)
            like = RawDataElement(BaseTag(0), None, 0, b"", 0, encoding[0], encoding[1])
            charsets = peek(ds, "SpecificCharacterSet", default_encoding)
            marks = []
            for elem in scratch:
                encoded = _encode_value(elem, like, charsets)
                if encoded is None:
                    self._mark(ds)
                    return
                marks.append((elem.tag, *encoded))
            self._marks[key] = marks
        for tag, vr, value in marks:
            ds[tag] = RawDataElement(tag, vr, len(value), value, 0, encoding[0], encoding[1])

    def _mark(self, ds: Dataset) -> None:
        opts = self.options
        ds.PatientIdentityRemoved = "YES"
        methods = ["RefSet PS3.15 E.1 Basic Profile"]
        codes = [CODE_BASIC_PROFILE]
        if opts.clean_descriptors:
            methods.append("Clean Descriptors Option")
            codes.append(CODE_CLEAN_DESCRIPTORS)
        if opts.retain_longitudinal_modified_dates:
            methods.append("Retain Longitudinal Modified Dates Option")
            codes.append(CODE_MODIFIED_DATES)
        ds.DeidentificationMethod = methods if len(methods) > 1 else methods[0]
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if opts.retain_longitudinal_modified_dates else "REMOVED"
        )

    def _process_file_meta(self, ds: Dataset, old_sop: str, ctx: _Context) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for elem in list(meta):
            tag = _tag(elem)
            if tag == (0x0002, 0x0003):
                continue
            action = resolve_action(tag, elem.VR, self.options)
            if action in {"X", "Z", "D"}:
                del meta[elem.tag]
                ctx.removed += 1
        if "MediaStorageSOPInstanceUID" in meta:
            old = _text(meta.MediaStorageSOPInstanceUID)
            if "SOPInstanceUID" in ds and old_sop:
                new = _text(peek(ds, "SOPInstanceUID"))
            else:
                new = self.uid(old) if old else ""
            if new and new != old:
                meta.MediaStorageSOPInstanceUID = new
                ctx.removed += 1
                ctx.record("sop_uid", old, new)

    # -- dataset walk ----------------------------------------------------------------------

    def _action(self, tag: Tag, vr: str) -> str:
        """The resolved action for a public attribute, looked up once per (tag, VR)."""
        key = (tag, vr)
        action = self._actions.get(key)
        if action is None:
            action = resolve_action(tag, vr, self.options)
            self._actions[key] = action
        return action

    def _process(
        self, ds: Dataset, ctx: _Context, scrub_all: bool, memo: dict | None = None
    ) -> None:
        # Elements stay raw (undecoded bytes) unless their action needs the value:
        # decoding and re-encoding every kept attribute was most of the engine's time.
        charset = _charset_key(ds)
        for tag in sorted(ds.keys()):
            group, element = tag.group, tag.element
            if group % 2 == 1 or is_curve_or_overlay(group):
                del ds[tag]
                ctx.removed += 1
                continue
            if group == 0x0002:  # File Meta in the body (malformed files): handled like meta
                continue
            elem, vr = _element(ds, tag)
            action = self._action((group, element), vr)
            if vr == "UI" and action == "K":
                action = "U"  # every instance UID is replaced (keeps_uid spares the rest)
            if action == "K" and vr != "SQ" and not (scrub_all and vr in TEXT_VRS):
                continue  # kept as it is: no need to decode it
            if action == "X":
                del ds[tag]
                ctx.removed += 1
                continue
            if memo is not None:
                key = _memo_key(charset, tag, vr, elem)
                if key is not None:
                    self._apply_outcome(ds, tag, elem, vr, action, ctx, memo, key)
                    continue
            if elem.is_raw:
                elem = ds[tag]
            self._act(ds, elem, (group, element), vr, action, ctx, scrub_all)

    def _apply_outcome(
        self,
        ds: Dataset,
        tag: BaseTag,
        elem: RawDataElement,
        vr: str,
        action: str,
        ctx: _Context,
        memo: dict,
        key: tuple,
    ) -> None:
        """De-identify a raw top-level element, or replay what the same bytes gave
        before in this context (every slice of a series repeats its patient, study,
        institution and descriptors): the replayed value is already encoded, so it
        is neither decoded nor re-encoded again."""
        outcome = memo.get((key, action))
        if outcome is None:
            outcome = self._outcome(ds, tag, elem, vr, action, ctx)
            if outcome is None:
                return  # done the ordinary way: the result cannot be remembered
            self._remember(memo, (key, action), outcome)
        for m in outcome.mappings:
            ctx.mappings.setdefault((m.kind, m.original), m)
        ctx.removed += outcome.removed
        if outcome.raw is None:
            if tag in ds:
                del ds[tag]
            return
        new_vr, value = outcome.raw
        ds[tag] = RawDataElement(
            tag, new_vr, len(value), value, 0, elem.is_implicit_VR, elem.is_little_endian
        )

    def _outcome(
        self, ds: Dataset, tag: BaseTag, raw: RawDataElement, vr: str, action: str, ctx: _Context
    ) -> _Outcome | None:
        mappings, removed = ctx.mappings, ctx.removed
        ctx.mappings = {}
        try:
            elem = ds[tag]
            self._act(ds, elem, (tag.group, tag.element), vr, action, ctx, False)
            recorded = tuple(ctx.mappings.values())
        finally:
            added = ctx.removed - removed
            for k, m in ctx.mappings.items():
                mappings.setdefault(k, m)
            ctx.mappings = mappings
        if tag not in ds:
            return _Outcome(None, recorded, added)
        encoded = _encode_value(ds[tag], raw, peek(ds, "SpecificCharacterSet", default_encoding))
        if encoded is None:
            return None
        return _Outcome(encoded, recorded, added)

    def _remember(self, memo: dict, key: Any, value: Any) -> None:
        if len(memo) >= MEMO_MAX_ENTRIES:
            memo.clear()
        memo[key] = value

    def _act(
        self,
        ds: Dataset,
        elem: DataElement,
        tag: Tag,
        vr: str,
        action: str,
        ctx: _Context,
        scrub_all: bool,
    ) -> None:
        has_value = not elem.is_empty
        if action == "X":
            del ds[elem.tag]
            ctx.removed += 1
        elif action == "Z":
            if has_value:
                elem.value = _empty_value(vr)
                ctx.removed += 1
        elif action == "D":
            elem.value = _dummy_value(vr)
            ctx.removed += 1
        elif action == "U":
            self._replace_uids(elem, tag, ctx)
        elif action == "P":
            self._pseudonymise(ds, elem, tag, ctx)
        elif action == "S":
            self._shift(elem, ctx)
        elif action == "C":
            if vr == "SQ":
                for item in elem.value or []:
                    self._process(item, ctx, scrub_all=True)
            else:
                self._scrub(elem, ctx)
        elif vr == "SQ":  # "R", or "K" for a sequence: de-identify the items
            for item in elem.value or []:
                self._process(item, ctx, scrub_all=scrub_all)
        elif scrub_all and vr in TEXT_VRS:
            self._scrub(elem, ctx)

    def _replace_uids(self, elem: DataElement, tag: Tag, ctx: _Context) -> None:
        if elem.is_empty:
            return
        keyword = keyword_for_tag(elem.tag) or ""
        values = elem.value
        if isinstance(values, bytes):  # UN element that the table names as a UID
            values = values.decode("ascii", "replace").strip("\x00 ")
            elem.VR = "UI"
        multi = isinstance(values, (list, tuple, MultiValue))
        new_values = []
        changed = False
        for value in _as_list(values):
            old = _text(value).rstrip("\x00")
            if not old or keeps_uid(keyword, old):
                new_values.append(old)
                continue
            new = self.uid(old)
            new_values.append(new)
            changed = True
            ctx.record(UID_KINDS.get(tag, "other_uid"), old, new)
        if changed:
            elem.value = new_values if multi else new_values[0]
            ctx.removed += 1

    def _pseudonymise(self, ds: Dataset, elem: DataElement, tag: Tag, ctx: _Context) -> None:
        if tag == PATIENT_ID:
            own = _text(elem.value)
            new = self.pseudonym(own) if own else ctx.pseudonym
            if own and own != ctx.patient_key:  # a nested record of another patient
                ctx.record("patient_id", own, new)
        else:
            item_id = _text(peek(ds, "PatientID", ""))
            new = self.pseudonym(item_id) if item_id else ctx.pseudonym
        if _text(elem.value) != new:
            elem.value = new
            ctx.removed += 1

    def _shift(self, elem: DataElement, ctx: _Context) -> None:
        if elem.is_empty:
            return
        values = elem.value
        multi = isinstance(values, (list, tuple, MultiValue))
        shifted = []
        for value in _as_list(values):
            new = _shift_date_string(_text(value), ctx.shift_days)
            if new is None:  # not a full date: cannot be shifted, so it goes
                elem.value = _empty_value(elem.VR)
                ctx.removed += 1
                return
            shifted.append(new)
        elem.value = shifted if multi else shifted[0]
        ctx.removed += 1

    # -- clean descriptors -----------------------------------------------------------------

    def _scrub_tokens(self, ds: Dataset) -> list[tuple[str, re.Pattern[str]]]:
        """Identifying strings of this dataset, to be cut out of descriptors that are kept."""
        tokens: set[str] = set()
        self._collect_tokens(ds, tokens)
        out = []
        for token in sorted(tokens, key=lambda t: (-len(t), t)):
            out.append((token, _token_pattern(token)))
        return out

    def _collect_tokens(self, ds: Dataset, tokens: set[str]) -> None:
        charset = _charset_key(ds)
        for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset decodes each element)
            elem, vr = _element(ds, tag)
            if vr == "SQ":
                memo_key = _memo_key(charset, tag, vr, elem)
                found = self._token_memo.get(memo_key) if memo_key else None
                if found is None:
                    inner: set[str] = set()
                    for item in (ds[tag] if elem.is_raw else elem).value or []:
                        self._collect_tokens(item, inner)
                    found = tuple(inner)
                    if memo_key:
                        self._remember(self._token_memo, memo_key, found)
                        ds[tag] = elem  # only read here: raw again, to be remembered whole
                tokens.update(found)
                continue
            private = tag.group % 2 == 1
            if private and tag.element < 0x0100:  # private creator names the vendor
                continue
            action = "X" if private else self._action((tag.group, tag.element), vr)
            if action in {"K", "C", "U"}:
                continue
            if vr not in TEXT_VRS and vr not in DATE_VRS and not (private and vr == "UN"):
                continue
            memo_key = _memo_key(charset, tag, vr, elem)
            found = self._token_memo.get(memo_key) if memo_key else None
            if found is None:
                if elem.is_raw:
                    elem = ds[tag]
                found = () if elem.is_empty else tuple(_tokens_of(elem.value, vr))
                if memo_key:
                    self._remember(self._token_memo, memo_key, found)
            tokens.update(found)

    def _scrub(self, elem: DataElement, ctx: _Context) -> None:
        if elem.is_empty or elem.VR not in TEXT_VRS or not ctx.scrub_tokens:
            return
        values = elem.value
        multi = isinstance(values, (list, tuple, MultiValue))
        cleaned = []
        changed = False
        for value in _as_list(values):
            text = str(value)
            for token, pattern in ctx.scrub_tokens:
                if token.lower() in text.lower():
                    text = pattern.sub(SCRUB_MARK, text)
            changed |= text != str(value)
            cleaned.append(text)
        if changed:
            elem.value = cleaned if multi else cleaned[0]
            ctx.removed += 1


def is_valid_uid(value: str) -> bool:
    """True when ``value`` is a syntactically valid UID of at most 64 characters."""
    return UID(value).is_valid
