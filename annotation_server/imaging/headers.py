"""What the index records about one de-identified header: study and series
fields, per-frame geometry and rescale, window presets (`IndexFacts`).

No Django here: ingest workers compute these next to the de-identification, so
only a few plain values (not the pydicom header) travel back to the importing
process, which writes the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset

from annotation_server.imaging.deid.elements import get_item, peek

# Decoded values of the raw bytes last seen, by tag, VR, bytes and character set:
# a series repeats its UIDs, codes and descriptions on every slice, and decoding
# them (pydicom's per-element machinery) cost more than the rest of the index
# facts. Only de-identified headers come here: nothing identifying is remembered.
_decoded: dict[tuple, Any] = {}
_MISSING = object()


def _get(ds: Dataset, keyword: str, default: Any = None) -> Any:
    """``ds.get(keyword, default)`` without decoding in place (`peek`), each value
    of a given encoding decoded once per process. Callers only read the value."""
    elem = get_item(ds, tag_for_keyword(keyword))
    if elem is None:
        return default
    raw = elem.value if elem.is_raw else None
    if not isinstance(raw, bytes) or elem.VR in (None, "UN", "SQ") or len(raw) > 256:
        return peek(ds, keyword, default)
    charset = ds.original_character_set or ds._character_set
    key = (
        elem.tag,
        elem.VR,
        raw,
        elem.is_little_endian,
        tuple(charset) if isinstance(charset, list) else charset,
    )
    try:
        return _decoded[key]
    except KeyError:
        pass
    value = peek(ds, keyword, default)
    if len(_decoded) >= 4096:
        _decoded.clear()
    _decoded[key] = value
    return value


def _required(ds: Dataset, keyword: str) -> Any:
    """``getattr(ds, keyword)``: AttributeError when it is missing."""
    value = _get(ds, keyword, _MISSING)
    if value is _MISSING:
        raise AttributeError(keyword)
    return value


def _float_list(value) -> list[float] | None:
    if value is None:
        return None
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        return None


def _num(value) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _age_years(value: str | None) -> int | None:
    if not value or len(value) != 4 or not value[:3].isdigit():
        return None
    n, unit = int(value[:3]), value[3].upper()
    return {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}.get(unit)


def _date(value: str | None) -> date | None:
    if not value or len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def window_presets(ds: Dataset) -> list[dict]:
    centres = peek(ds, "WindowCenter")
    widths = peek(ds, "WindowWidth")
    if centres is None or widths is None:
        return []
    centres = list(centres) if isinstance(centres, pydicom.multival.MultiValue) else [centres]
    widths = list(widths) if isinstance(widths, pydicom.multival.MultiValue) else [widths]
    explanations = _get(ds, "WindowCenterWidthExplanation")
    if explanations is not None and not isinstance(explanations, pydicom.multival.MultiValue):
        explanations = [explanations]
    presets = []
    for i, (c, w) in enumerate(zip(centres, widths, strict=False)):
        name = str(explanations[i]) if explanations and i < len(explanations) else f"file {i + 1}"
        presets.append({"name": name, "center": float(c), "width": float(w)})
    return presets


def _functional(ds: Dataset, index: int, sequence: str, attr: str):
    """An attribute from frame `index`'s functional group, else from the shared group."""
    for groups, idx in (
        ("PerFrameFunctionalGroupsSequence", index),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        seq = ds.get(groups)
        if not seq or idx >= len(seq):
            continue
        group = seq[idx].get(sequence)
        if group and attr in group[0]:
            return group[0].get(attr)
    return None


def frames_of(ds: Dataset) -> list[dict]:
    """Geometry and rescale for each frame: one entry for single-frame images,
    one per frame for multi-frame (enhanced CT/MR and the like)."""
    n = int(peek(ds, "NumberOfFrames", 1) or 1)
    if n <= 1:
        return [
            {
                "frame": 0,
                "position": _float_list(peek(ds, "ImagePositionPatient")),
                "orientation": _float_list(peek(ds, "ImageOrientationPatient")),
                "slope": _num(peek(ds, "RescaleSlope")) or 1.0,
                "intercept": _num(peek(ds, "RescaleIntercept")) or 0.0,
            }
        ]
    frames = []
    for i in range(n):

        def get(sequence, attr, i=i):
            return _functional(ds, i, sequence, attr)

        frames.append(
            {
                "frame": i,
                "position": _float_list(get("PlanePositionSequence", "ImagePositionPatient")),
                "orientation": _float_list(
                    get("PlaneOrientationSequence", "ImageOrientationPatient")
                )
                or _float_list(_get(ds, "ImageOrientationPatient")),
                "slope": _num(get("PixelValueTransformationSequence", "RescaleSlope"))
                or _num(_get(ds, "RescaleSlope"))
                or 1.0,
                "intercept": _num(get("PixelValueTransformationSequence", "RescaleIntercept"))
                or _num(_get(ds, "RescaleIntercept"))
                or 0.0,
            }
        )
    return frames


def _series_fields(ds: Dataset) -> dict:
    spacing = (
        _float_list(_get(ds, "PixelSpacing"))
        or _float_list(_functional(ds, 0, "PixelMeasuresSequence", "PixelSpacing"))
        or _float_list(_get(ds, "ImagerPixelSpacing"))
    )
    orientation = frames_of(ds)[0]["orientation"] if "NumberOfFrames" in ds else None
    return {
        "modality": str(_get(ds, "Modality", "")),
        "body_part": str(_get(ds, "BodyPartExamined", "")),
        "description": str(_get(ds, "SeriesDescription", ""))[:200],
        "manufacturer": str(_get(ds, "Manufacturer", ""))[:64],
        "model_name": str(_get(ds, "ManufacturerModelName", ""))[:64],
        "kernel": str(_get(ds, "ConvolutionKernel", ""))[:64],
        "kvp": _num(_get(ds, "KVP")),
        "contrast": str(_get(ds, "ContrastBolusAgent", ""))[:64],
        "slice_thickness_mm": _num(_get(ds, "SliceThickness")),
        "pixel_spacing_mm": spacing,
        "orientation": orientation or _float_list(_get(ds, "ImageOrientationPatient")),
        "frame_of_reference_uid": str(_get(ds, "FrameOfReferenceUID", "")),
        "rows": int(_required(ds, "Rows")) if "Rows" in ds else None,
        "columns": int(_required(ds, "Columns")) if "Columns" in ds else None,
    }


def laterality(ds: Dataset) -> str:
    """ImageLaterality (the image's own), else the series' Laterality: R, L, B, U or ""."""
    for keyword in ("ImageLaterality", "Laterality"):
        side = str(_get(ds, keyword, "") or "").strip().upper()[:1]
        if side in ("R", "L", "B", "U"):
            return side
    return ""


VIEW_POSITION_LENGTH = 16  # ViewPosition is a CS: 16 characters at most


def view_position(ds: Dataset) -> str:
    """The radiograph's view (ViewPosition: PA, AP, LL...), upper case, "" when the
    header does not say. The one reading of it: the import records it
    (Instance.view_position) and `pixels.view_markers` shows it."""
    return str(_get(ds, "ViewPosition", "") or "").strip().upper()[:VIEW_POSITION_LENGTH]


def geometry_key(ds: Dataset) -> tuple:
    """What every file of one series must agree on: matrix, spacing, orientation."""
    spacing = peek(ds, "PixelSpacing") or peek(ds, "ImagerPixelSpacing") or ()
    orientation = peek(ds, "ImageOrientationPatient") or ()
    return (
        int(peek(ds, "Rows")),
        int(peek(ds, "Columns")),
        tuple(round(float(v), 3) for v in spacing),
        tuple(round(float(v), 2) for v in orientation),
    )


@dataclass
class IndexFacts:
    """Everything the index and the import report need from one header, in plain
    values (cheap to pickle, unlike a pydicom Dataset)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    patient_id: str
    modality: str
    study: dict  # Study defaults (taken from the first file of a new study)
    series: dict  # Series defaults (taken from the first file of a new series)
    instance: dict  # Instance fields shared by the file's frames
    frames: list[dict]  # frames_of()
    geometry: tuple  # geometry_key()


def index_facts(ds: Dataset) -> IndexFacts:
    """Raises ValueError/TypeError on values that cannot be read as numbers."""
    return IndexFacts(
        study_uid=str(_required(ds, "StudyInstanceUID")),
        series_uid=str(_required(ds, "SeriesInstanceUID")),
        sop_instance_uid=str(_required(ds, "SOPInstanceUID")),
        sop_class_uid=str(_required(ds, "SOPClassUID")),
        patient_id=str(_get(ds, "PatientID", "")),
        modality=str(_get(ds, "Modality", "")),
        study={
            "patient_pseudo_id": str(_get(ds, "PatientID", "")),
            "study_date": _date(_get(ds, "StudyDate")),
            "patient_age_years": _age_years(_get(ds, "PatientAge")),
            "patient_sex": str(_get(ds, "PatientSex", ""))[:1],
            "description": str(_get(ds, "StudyDescription", ""))[:200],
        },
        series=_series_fields(ds),
        instance={
            "sop_class_uid": str(_required(ds, "SOPClassUID")),
            "instance_number": int(_get(ds, "InstanceNumber", 0) or 0),
            "rows": int(_required(ds, "Rows")),
            "columns": int(_required(ds, "Columns")),
            "window_presets": window_presets(ds),
            "photometric": str(_get(ds, "PhotometricInterpretation", "")),
            "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
            # the file arrived as DICOM; a photograph's import says JPEG/PNG/TIFF
            # (ingest/photos.py), a released quarantined one its recorded format
            "source_format": "DICOM",
            "laterality": laterality(ds),
            "view_position": view_position(ds),
        },
        frames=frames_of(ds),
        geometry=geometry_key(ds),
    )
