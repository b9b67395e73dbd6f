"""DICOM SR TID 1500 (Comprehensive 3D SR, highdicom), per read and for the reference.

One Measurement Report per read (`annotations/dicom/SR/reads/<read_id>.dcm`)
whose observer is the reader's pseudonym (a person observer; no name), and
one for the reference standard per series (observer: the reference panel as a
device). Each finding is a Planar ROI group on the slice through its centre
(closed polyline for an outline, point for a point mark) referencing the
de-identified image, with its finding type, its tracking id, and its
measurements when known (TID 300, export/model.py states where they come from):

    long axis      SCT 103339001 "Long axis"                      UCUM mm
    short axis     SCT 103340004 "Short axis"                     UCUM mm
    volume         SCT 118565006 "Volume"                         UCUM mm3
    mean HU        DCM 112031 "Attenuation Coefficient",          UCUM [hnsf'U]
                   derivation (CID 3488) SCT 373098007 "Mean"
    max HU         DCM 112031 "Attenuation Coefficient",          UCUM [hnsf'U]
                   derivation SCT 56851009 "Maximum"
    diameter       SCT 81827009 "Diameter" (reference only: the   UCUM mm
                   consensus diameter that LUNA16 scores against)

A model-derived finding (export/provenance.py)
carries an Algorithm Identification (TID 4019: name, version, family "Artificial
Intelligence" of CID 7162, the weights' sha256 as a parameter) on its
measurement group (TID 1410, "algorithm used to identify the region") and on
each of its measurements (TID 300). TID 1410 takes one algorithm: a reference
finding resting on several models names the first (sorted by name, version,
sha256) and lists every model behind it as parameters.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from export.dicom_common import MANUFACTURER, derived_uid, finish, source_images
from export.lidc_xml import outline
from export.model import FindingRecord, PackageInput, ReadRecord, ReferenceRecord, SeriesRecord
from export.provenance import UNKNOWN_MODEL, models_of

# (concept, derivation, unit) of each measurement, in the order they are written
LONG_AXIS = (codes.SCT.LongAxis, None, codes.UCUM.Millimeter)
SHORT_AXIS = (codes.SCT.ShortAxis, None, codes.UCUM.Millimeter)
VOLUME = (codes.SCT.Volume, None, codes.UCUM.CubicMillimeter)
DIAMETER = (codes.SCT.Diameter, None, codes.UCUM.Millimeter)
MEAN_HU = (codes.DCM.AttenuationCoefficient, codes.SCT.Mean, codes.UCUM.HounsfieldUnit)
MAX_HU = (codes.DCM.AttenuationCoefficient, codes.SCT.Maximum, codes.UCUM.HounsfieldUnit)


def measured_values(item: FindingRecord | ReferenceRecord) -> list[tuple]:
    """(measurement, value) pairs of a finding; None values are left out later."""
    return [
        (LONG_AXIS, item.long_axis_mm),
        (SHORT_AXIS, item.short_axis_mm),
        (VOLUME, item.volume_mm3),
        (MEAN_HU, item.mean_hu),
        (MAX_HU, item.max_hu),
    ]


def _region(geometry: dict, images) -> tuple[hd.sr.ImageRegion, object] | None:
    shapes = sorted(geometry.get("shapes", []), key=lambda s: s["slice_index"])
    if not shapes:
        return None
    mid = shapes[len(shapes) // 2]
    index = mid["slice_index"]
    if not 0 <= index < len(images):
        return None
    image = images[index]
    source = hd.sr.SourceImageForRegion.from_source_image(image)
    kind = geometry.get("kind", "")
    pts = mid.get("points") or []
    if kind in ("point",) or len(pts) < 2:
        data = np.asarray([pts[0] if pts else [0, 0]], dtype=float)
        gtype = hd.sr.GraphicTypeValues.POINT
    elif kind in ("line", "polyline"):
        data = np.asarray(pts, dtype=float)
        gtype = hd.sr.GraphicTypeValues.POLYLINE
    else:
        ring = outline(kind, pts) if kind in ("ellipse", "box") else [tuple(p) for p in pts]
        ring = [*ring, ring[0]]  # closed
        data = np.asarray(ring, dtype=float)
        gtype = hd.sr.GraphicTypeValues.POLYLINE
    # highdicom's 2D coordinates are (column, row) with (1, 1) the first pixel's centre
    return hd.sr.ImageRegion(graphic_type=gtype, graphic_data=data + 1.0, source_image=source), (
        image
    )


def _measurements(values, algorithm) -> list[hd.sr.Measurement]:
    out = []
    for (concept, derivation, unit), value in values:
        if value is None:
            continue
        out.append(
            hd.sr.Measurement(
                name=concept,
                value=float(value),
                unit=unit,
                derivation=derivation,
                algorithm_id=algorithm,
            )
        )
    return out


def _algorithm(item: FindingRecord | ReferenceRecord) -> hd.sr.AlgorithmIdentification | None:
    models = models_of(item)
    if not models:
        return None
    first = models[0]
    if len(models) == 1:
        parameters = [f"weights_sha256={first.weights_sha256}"] if first.weights_sha256 else None
    else:
        parameters = [
            f"model={m.name or UNKNOWN_MODEL} {m.version or 'unknown'}"
            + (f" weights_sha256={m.weights_sha256}" if m.weights_sha256 else "")
            for m in models
        ]
    return hd.sr.AlgorithmIdentification(
        name=first.name or UNKNOWN_MODEL,
        version=first.version or "unknown",
        parameters=parameters,
        family=codes.cid7162.ArtificialIntelligence,
    )


def _group(inp, key, n, finding_type, geometry, values, algorithm, images):
    found = _region(geometry or {}, images)
    if found is None:
        return None
    region, _image = found
    prop = codes.SCT.Nodule if "nodule" in finding_type else codes.SCT.Lesion
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=derived_uid(inp, "sr-track", key, n), identifier=f"{finding_type} {key}"[:64]
        ),
        referenced_region=region,
        finding_type=prop,
        algorithm_id=algorithm,
        measurements=_measurements(values, algorithm) or None,
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(
                name=codes.DCM.Finding,
                value=hd.sr.CodedConcept(finding_type[:16] or "finding", "99REFSET", finding_type),
            )
        ],
    )


def _document(inp, series, key, observer, groups, number):
    images = source_images(series)
    report = hd.sr.MeasurementReport(
        observation_context=observer,
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion
        if series.modality == "CT"
        else hd.sr.CodedConcept("P5-09051", "SRT", "Imaging procedure"),
        imaging_measurements=groups,
        title=codes.cid7021.ImagingMeasurementReport,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=images,
        content=report,
        series_instance_uid=derived_uid(inp, "sr-series", key),
        series_number=number,
        sop_instance_uid=derived_uid(inp, "sr", key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=True,
        is_verified=False,
        series_description=f"RefSet {key}"[:64],
    )
    finish(sr, inp, key, images[0])
    return sr


def device_observer(uid: str, name: str, model_name: str | None = None):
    """The observation context of a device: the reference panel, or a model
    (IHE AIR: AI results are observed by a device)."""
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device,
            observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
                uid=uid,
                name=name[:64],
                manufacturer_name=MANUFACTURER,
                model_name=model_name[:64] if model_name else None,
            ),
        )
    )


def for_read(
    inp: PackageInput,
    read: ReadRecord,
    series: SeriesRecord,
    *,
    observer=None,
    series_number: int | None = None,
):
    """A read's findings as TID 1500; observed by its reader's pseudonym unless
    `observer` says otherwise (a model's proposals: `device_observer`)."""
    images = source_images(series)
    groups = []
    for n, f in enumerate(sorted(read.findings, key=lambda f: f.finding_id), start=1):
        values = measured_values(f)
        group = _group(
            inp, f.finding_id, n, f.finding_type, f.geometry, values, _algorithm(f), images
        )
        if group is not None:
            groups.append(group)
    if not groups:
        return None  # TID 1500 needs a measurement; a read that marked nothing has no SR
    if observer is None:
        observer = hd.sr.ObservationContext(
            observer_person_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Person,
                observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                    name=f"{read.reader_pseudo_id}^"
                ),
            )
        )
    number = 800 + read.phase if series_number is None else series_number
    return _document(inp, series, f"read-{read.read_id}", observer, groups, number)


def for_reference(inp: PackageInput, series: SeriesRecord, refs: list[ReferenceRecord]):
    images = source_images(series)
    groups = []
    for n, r in enumerate(sorted(refs, key=lambda r: r.ref_finding_id), start=1):
        if r.excluded:
            continue
        values = [(DIAMETER, r.diameter_mm), *measured_values(r)]
        group = _group(
            inp, r.ref_finding_id, n, r.finding_type, r.geometry, values, _algorithm(r), images
        )
        if group is not None:
            groups.append(group)
    if not groups:
        return None
    observer = device_observer(derived_uid(inp, "reference-panel"), "RefSet reference standard")
    return _document(inp, series, f"reference-{series.series_uid}", observer, groups, 850)


def write(out, inp: PackageInput, prefix: str = "", progress=None) -> None:
    by_series = inp.series_by_uid()
    refs: dict[str, list[ReferenceRecord]] = {}
    for ref in inp.reference:
        refs.setdefault(ref.series_uid, []).append(ref)
    for read in sorted(inp.reads, key=lambda r: (r.series_uid, r.read_id)):
        series = by_series.get(read.series_uid)
        document = for_read(inp, read, series) if series is not None else None
        if document is not None:
            out.save_dataset(f"{prefix}reads/{read.read_id}.dcm", document)
        if progress:
            progress()
    for series_uid in sorted(refs):
        series = by_series.get(series_uid)
        document = for_reference(inp, series, refs[series_uid]) if series is not None else None
        if document is not None:
            out.save_dataset(f"{prefix}reference/{series_uid}.dcm", document)
