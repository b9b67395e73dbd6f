"""Indexing already de-identified DICOM datasets into studies, series and instances.

`index_datasets` is the storage half of ingest: it writes each instance to
content-addressed storage and records its geometry. The import pipeline (file
parsing, de-identification, per-file reports) sits in front of it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pydicom
from django.db import transaction
from pydicom.dataset import Dataset

from annotation_server.imaging import storage
from annotation_server.imaging.deid.engine import peek
from annotation_server.imaging.ingest.prepare import encode
from annotation_server.imaging.models import Instance, Series, Study


@dataclass
class IndexReport:
    studies: int = 0
    series: list[Series] = field(default_factory=list)
    new_series: list[Series] = field(default_factory=list)
    instances: int = 0
    duplicates: int = 0


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


def _normal(orientation: list[float] | None) -> np.ndarray | None:
    if not orientation or len(orientation) != 6:
        return None
    row, col = np.array(orientation[:3]), np.array(orientation[3:])
    n = np.cross(row, col)
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else None


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
    explanations = ds.get("WindowCenterWidthExplanation")
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
                or _float_list(ds.get("ImageOrientationPatient")),
                "slope": _num(get("PixelValueTransformationSequence", "RescaleSlope"))
                or _num(ds.get("RescaleSlope"))
                or 1.0,
                "intercept": _num(get("PixelValueTransformationSequence", "RescaleIntercept"))
                or _num(ds.get("RescaleIntercept"))
                or 0.0,
            }
        )
    return frames


def _series_fields(ds: Dataset) -> dict:
    spacing = (
        _float_list(ds.get("PixelSpacing"))
        or _float_list(_functional(ds, 0, "PixelMeasuresSequence", "PixelSpacing"))
        or _float_list(ds.get("ImagerPixelSpacing"))
    )
    orientation = frames_of(ds)[0]["orientation"] if "NumberOfFrames" in ds else None
    return {
        "modality": str(ds.get("Modality", "")),
        "body_part": str(ds.get("BodyPartExamined", "")),
        "description": str(ds.get("SeriesDescription", ""))[:200],
        "manufacturer": str(ds.get("Manufacturer", ""))[:64],
        "model_name": str(ds.get("ManufacturerModelName", ""))[:64],
        "kernel": str(ds.get("ConvolutionKernel", ""))[:64],
        "kvp": _num(ds.get("KVP")),
        "contrast": str(ds.get("ContrastBolusAgent", ""))[:64],
        "slice_thickness_mm": _num(ds.get("SliceThickness")),
        "pixel_spacing_mm": spacing,
        "orientation": orientation or _float_list(ds.get("ImageOrientationPatient")),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "rows": int(ds.Rows) if "Rows" in ds else None,
        "columns": int(ds.Columns) if "Columns" in ds else None,
    }


@dataclass
class StoredEntry:
    """A stored instance: its header (pixel data may be absent) and storage facts."""

    header: Dataset
    sha256: str
    key: str
    size: int


def store(ds: Dataset) -> StoredEntry:
    data = encode(ds)
    digest, key, _ = storage.put(data)
    return StoredEntry(ds, digest, key, len(data))


def index_datasets(project, datasets: list[Dataset], *, site=None) -> IndexReport:
    """Store and index de-identified datasets of one or more series."""
    return index_entries(project, [store(ds) for ds in datasets], site=site)


@transaction.atomic
def index_entries(project, entries: list[StoredEntry], *, site=None) -> IndexReport:
    """Index stored instances into studies, series and per-frame Instance rows."""
    report = IndexReport()
    by_series: dict[str, list[StoredEntry]] = defaultdict(list)
    for entry in entries:
        by_series[str(entry.header.SeriesInstanceUID)].append(entry)
    for series_uid, items in by_series.items():
        first = items[0].header
        study, created = Study.objects.get_or_create(
            project=project,
            study_uid=str(first.StudyInstanceUID),
            defaults={
                "patient_pseudo_id": str(first.get("PatientID", "")),
                "site": site,
                "study_date": _date(first.get("StudyDate")),
                "patient_age_years": _age_years(first.get("PatientAge")),
                "patient_sex": str(first.get("PatientSex", ""))[:1],
                "description": str(first.get("StudyDescription", ""))[:200],
            },
        )
        report.studies += int(created)
        fields = _series_fields(first)
        series, series_created = Series.objects.get_or_create(
            study=study, series_uid=series_uid, defaults=fields
        )
        if series_created:
            report.new_series.append(series)
        normal = _normal(series.orientation or fields["orientation"])
        rows = []
        for entry in items:
            for frame in frames_of(entry.header):
                position = frame["position"]
                along = float(np.dot(normal, position)) if normal is not None and position else None
                rows.append((along, entry, frame))
        known = set(series.instances.values_list("sop_instance_uid", "frame"))
        was_empty = not known
        fresh = []
        for row in rows:
            ident = (str(row[1].header.SOPInstanceUID), row[2]["frame"])
            if ident not in known:
                known.add(ident)
                fresh.append(row)
        report.duplicates += len(rows) - len(fresh)
        instances = []
        for along, entry, frame in fresh:
            ds = entry.header
            instances.append(
                Instance(
                    series=series,
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    frame=frame["frame"],
                    sop_class_uid=str(ds.SOPClassUID),
                    instance_number=int(ds.get("InstanceNumber", 0) or 0),
                    slice_index=0,
                    position=frame["position"],
                    position_along_normal=along,
                    rows=int(ds.Rows),
                    columns=int(ds.Columns),
                    rescale_slope=frame["slope"],
                    rescale_intercept=frame["intercept"],
                    window_presets=window_presets(ds),
                    photometric=str(ds.get("PhotometricInterpretation", "")),
                    transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
                    sha256=entry.sha256,
                    file=entry.key,
                    size_bytes=entry.size,
                )
            )
        if was_empty:  # a new series: number the slices before the one INSERT
            _number(instances)
        Instance.objects.bulk_create(instances, batch_size=500)
        report.instances += len(instances)
        if fresh:
            _reorder(series, instances if was_empty else None)
        report.series.append(series)
    return report


def _number(instances: list[Instance]) -> None:
    """Sort frames along the slice normal (then instance number, frame) and number them."""
    instances.sort(
        key=lambda i: (
            i.position_along_normal is None,
            i.position_along_normal or 0.0,
            i.instance_number or 0,
            i.frame,
        )
    )
    for index, inst in enumerate(instances):
        inst.slice_index = index


def _reorder(series: Series, numbered: list[Instance] | None = None) -> None:
    """Number the series' frames along the slice normal and update its geometry
    (`numbered`: the series' complete, already numbered rows, when it was new)."""
    if numbered is None:
        instances = list(series.instances.all())
        _number(instances)
        Instance.objects.bulk_update(instances, ["slice_index"], batch_size=1000)
    else:
        instances = numbered
    positions = [i.position_along_normal for i in instances if i.position_along_normal is not None]
    steps = np.diff(positions) if len(positions) > 1 else []
    series.slice_spacing_mm = float(np.median(steps)) if len(steps) else None
    series.num_instances = len(instances)
    series.save(update_fields=["slice_spacing_mm", "num_instances"])
