"""De-identification engine: PS3.15 Basic Profile with RefSet's options, keyed by a secret.

Pure pydicom + stdlib (no Django). Every replacement is derived from the project secret with
HMAC-SHA256, so the same original always gives the same replacement within a project and no
database is needed to stay consistent across files, imports and workers:

- UIDs: ``2.25.<decimal>`` of a 128-bit value shaped like an RFC 9562 version-8 UUID;
- patient pseudonyms: ``P`` + 10 base32 characters;
- date offsets: whole days in ``-3650..-1`` per patient (times are kept).

Beside it: profile.py (the PS3.15 rule table), elements.py (reading elements
without decoding them in place), values.py (replacement values, re-encoding),
burned_in.py (which images may show identifying pixels).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from pydicom.charset import default_encoding
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, UID_dictionary

from .burned_in import burned_in_risk
from .elements import as_list, element_and_vr, peek, tag_pair, text_of
from .profile import (
    CODE_BASIC_PROFILE,
    CODE_CLEAN_DESCRIPTORS,
    CODE_MODIFIED_DATES,
    DATE_VRS,
    Tag,
    is_curve_or_overlay,
    resolve_action,
)
from .values import (
    TEXT_VRS,
    age_string,
    dummy_value,
    empty_value,
    encode_value,
    parse_date,
    shift_date_string,
    tokens_of,
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


class DeidError(ValueError):
    """The dataset cannot be de-identified safely (unreadable or malformed attributes)."""


@dataclass(frozen=True)
class DeidOptions:
    clean_descriptors: bool = True
    retain_longitudinal_modified_dates: bool = True
    # Read the pixels for burned-in text (pixel_text.py) when the header raises no
    # flag; ingest quarantines what it finds (REFSET_BURNED_IN_OCR turns it off).
    detect_pixel_text: bool = True


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
        pid = text_of(peek(ds, "PatientID", ""))
        if pid:
            return pid
        study = text_of(peek(ds, "StudyInstanceUID", ""))
        if study:
            return "study:" + study
        return "sop:" + text_of(peek(ds, "SOPInstanceUID", ""))

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
        ctx.record("patient_id", text_of(peek(out, "PatientID", "")), ctx.pseudonym)
        ctx.record("patient_name", text_of(peek(out, "PatientName", "")), ctx.pseudonym)
        if self.options.retain_longitudinal_modified_dates:
            ctx.record("date_shift", key, str(ctx.shift_days))
        self._fill_patient_age(out)
        old_sop = text_of(peek(out, "SOPInstanceUID", ""))
        self._process(out, ctx, scrub_all=False, memo=self._memo_for(out, ctx))
        for keyword in ("PatientID", "PatientName"):  # Type 2: always present, pseudonymous
            if keyword not in out or not text_of(peek(out, keyword)):
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
        if text_of(peek(ds, "PatientAge", "")):
            return
        birth = parse_date(peek(ds, "PatientBirthDate", ""))
        if birth is None:
            return
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            at = parse_date(peek(ds, keyword, ""))
            if at is not None:
                age = age_string(birth, at)
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
                encoded = encode_value(elem, like, charsets)
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
            tag = tag_pair(elem)
            if tag == (0x0002, 0x0003):
                continue
            action = resolve_action(tag, elem.VR, self.options)
            if action in {"X", "Z", "D"}:
                del meta[elem.tag]
                ctx.removed += 1
        if "MediaStorageSOPInstanceUID" in meta:
            old = text_of(meta.MediaStorageSOPInstanceUID)
            if "SOPInstanceUID" in ds and old_sop:
                new = text_of(peek(ds, "SOPInstanceUID"))
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
            elem, vr = element_and_vr(ds, tag)
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
        encoded = encode_value(ds[tag], raw, peek(ds, "SpecificCharacterSet", default_encoding))
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
                elem.value = empty_value(vr)
                ctx.removed += 1
        elif action == "D":
            elem.value = dummy_value(vr)
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
        for value in as_list(values):
            old = text_of(value).rstrip("\x00")
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
            own = text_of(elem.value)
            new = self.pseudonym(own) if own else ctx.pseudonym
            if own and own != ctx.patient_key:  # a nested record of another patient
                ctx.record("patient_id", own, new)
        else:
            item_id = text_of(peek(ds, "PatientID", ""))
            new = self.pseudonym(item_id) if item_id else ctx.pseudonym
        if text_of(elem.value) != new:
            elem.value = new
            ctx.removed += 1

    def _shift(self, elem: DataElement, ctx: _Context) -> None:
        if elem.is_empty:
            return
        values = elem.value
        multi = isinstance(values, (list, tuple, MultiValue))
        shifted = []
        for value in as_list(values):
            new = shift_date_string(text_of(value), ctx.shift_days)
            if new is None:  # not a full date: cannot be shifted, so it goes
                elem.value = empty_value(elem.VR)
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
            elem, vr = element_and_vr(ds, tag)
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
                found = () if elem.is_empty else tuple(tokens_of(elem.value, vr))
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
        for value in as_list(values):
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
