"""DICOM Segmentation (highdicom), per read and for the reference, per series.

`annotations/dicom/SEG/reads/<read_id>.dcm` holds one segment per finding of
that read that has an area (points and lines have none); the reference's
`annotations/dicom/SEG/reference/<series_uid>.dcm` one segment per current,
scored reference finding. Segments are BINARY, on the source images' own grid
(frames referencing the de-identified instances), labelled with the finding
type and the finding id. A segment of a model-derived finding (a reader's
model-accepted or model-edited finding, or a reference finding resting on such
marks: export/provenance.py) is SEMIAUTOMATIC, since a model proposed it and a
person kept, reshaped or adjudicated it, with one Segmentation Algorithm
Identification item per model behind it (name, version, family "Artificial
Intelligence" of CID 7162, weights sha256 as a parameter); manual ones are
MANUAL.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from export.dicom_common import MANUFACTURER, derived_uid, finish, source_images
from export.model import FindingRecord, PackageInput, ReadRecord, ReferenceRecord, SeriesRecord
from export.provenance import UNKNOWN_MODEL, models_of
from export.volume import dense, finding_mask


def _algorithm(
    item: FindingRecord | ReferenceRecord,
) -> tuple[str, hd.AlgorithmIdentificationSequence | None]:
    models = models_of(item)
    if not models:
        return hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    ident = None
    for model in models:
        one = hd.AlgorithmIdentificationSequence(
            name=(model.name or UNKNOWN_MODEL)[:64],
            family=codes.cid7162.ArtificialIntelligence,
            version=(model.version or "unknown")[:64],
            parameters={"weights_sha256": model.weights_sha256} if model.weights_sha256 else None,
        )
        if ident is None:
            ident = one
        else:
            ident.extend(one)
    return hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC, ident


def _description(inp, key: str, number: int, label: str, finding_type: str, algorithm=None):
    kind, ident = algorithm or (hd.seg.SegmentAlgorithmTypeValues.MANUAL, None)
    prop = codes.SCT.Nodule if "nodule" in finding_type else codes.SCT.Lesion
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=label[:64],
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=prop,
        algorithm_type=kind,
        algorithm_identification=ident,
        tracking_uid=derived_uid(inp, "seg-track", key, label),
        tracking_id=label[:64],
    )


def build(
    inp: PackageInput,
    series: SeriesRecord,
    items: list[tuple[str, str, dict, tuple | None]],
    key: str,
    series_number: int,
) -> hd.seg.Segmentation | None:
    """items: (label, finding_type, geometry, algorithm) per segment; None when none has area."""
    images = source_images(series)
    shape = (len(images), int(images[0].Rows), int(images[0].Columns))
    planes, descriptions = [], []
    for label, ftype, geometry, algorithm in items:
        mask = finding_mask(geometry)
        if mask is None:
            continue
        volume = dense(mask, shape)
        if not volume.any():
            continue
        planes.append(volume)
        descriptions.append(_description(inp, key, len(planes), label, ftype, algorithm))
    if not planes:
        return None
    pixels = np.stack(planes, axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=derived_uid(inp, "seg-series", key),
        series_number=series_number,
        sop_instance_uid=derived_uid(inp, "seg", key),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="RefSet export",
        software_versions=inp.tool_version or "RefSet",
        device_serial_number=inp.dataset_id[:16] or "refset",
        series_description=f"RefSet {key}"[:64],
        content_label="REFSET",
        content_description=f"{inp.dataset_id} v{inp.version}"[:64],
        omit_empty_frames=True,
    )
    finish(seg, inp, key, images[0])
    return seg


def for_read(inp: PackageInput, read: ReadRecord, series: SeriesRecord, *, build=build):
    """A read's SEG by `build` (this module's, or export/fundus_seg.py's)."""
    items = [
        (f.finding_id, f.finding_type, f.geometry, _algorithm(f))
        for f in sorted(read.findings, key=lambda f: f.finding_id)
    ]
    return build(inp, series, items, f"read-{read.read_id}", series_number=900 + read.phase)


def for_reference(
    inp: PackageInput, series: SeriesRecord, refs: list[ReferenceRecord], *, build=build
):
    items = [
        (r.ref_finding_id, r.finding_type, r.geometry, _algorithm(r))
        for r in sorted(refs, key=lambda r: r.ref_finding_id)
        if r.geometry and not r.excluded
    ]
    return build(inp, series, items, f"reference-{series.series_uid}", series_number=950)


def write(out, inp: PackageInput, prefix: str = "", progress=None, *, build=build) -> None:
    by_series = inp.series_by_uid()
    reads = sorted(inp.reads, key=lambda r: (r.series_uid, r.read_id))
    refs: dict[str, list[ReferenceRecord]] = {}
    for ref in inp.reference:
        refs.setdefault(ref.series_uid, []).append(ref)
    for read in reads:
        series = by_series.get(read.series_uid)
        seg = for_read(inp, read, series, build=build) if series and read.findings else None
        if seg is not None:
            out.save_dataset(f"{prefix}reads/{read.read_id}.dcm", seg)
        if progress:
            progress()
    for series_uid in sorted(refs):
        series = by_series.get(series_uid)
        seg = for_reference(inp, series, refs[series_uid], build=build) if series else None
        if seg is not None:
            out.save_dataset(f"{prefix}reference/{series_uid}.dcm", seg)
