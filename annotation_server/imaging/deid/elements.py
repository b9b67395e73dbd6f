"""Reading DICOM elements for de-identification and indexing without decoding
them in place: `peek` and `get_item` read a value and leave a raw element raw,
so what is kept is written back byte for byte. Pure pydicom (no Django).
"""

from __future__ import annotations

from typing import Any

from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag

from .profile import Tag


def text_of(value: Any) -> str:
    return "" if value is None else str(value).strip()


def as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, MultiValue)):
        return list(value)
    return [value]


def tag_pair(elem: DataElement) -> Tag:
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


def element_and_vr(ds: Dataset, tag: BaseTag) -> tuple[DataElement | RawDataElement, str]:
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
