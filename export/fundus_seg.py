"""DICOM Segmentation of fundus photographs: lesion shapes and optic disc / cup outlines.

A version of photographs (export/fundus.py ``applies``) gets, like a CT version
(export/seg.py), one SEG per read with shaped findings,
``annotations/dicom/SEG/reads/<read_id>.dcm``, and one per photograph for the
reference, ``annotations/dicom/SEG/reference/<series_uid>.dcm`` (the path the
reference table's ``seg_ref`` names). One BINARY segment per finding that
encloses an area (haemorrhage, hard exudate, cotton-wool spot and
neovascularisation polygons or boxes, disc and cup outlines); microaneurysm
points have none and stay in COCO (keypoints) and the SR. Segments are labelled
with the finding id and tracked by it, typed by SNOMED CT where pydicom's code
dictionary has the concept (haemorrhage: Hemorrhage; optic disc: Optic disc
structure, category Anatomical structure) and as Lesion (category Morphologically
abnormal structure) or Anatomical structure (the optic cup) otherwise, the
finding type in the label. MANUAL or SEMIAUTOMATIC as export/seg.py decides.

Why a shim: highdicom builds a SEG on an image of a multi-frame IOD from its
Shared Functional Groups (Pixel Measures), and an Ophthalmic Photography 8 Bit
image belongs to a multi-frame IOD (NumberOfFrames 1) without functional groups,
so highdicom refuses it as it is. The builder gets a copy of the photograph's
header with a Shared Functional Groups Sequence holding its Pixel Spacing (1 x 1
when the photograph records none; fundus cameras rarely do); the SEG references
the photograph's own SOP Class and Instance UIDs. When the photograph has no
spacing, the Pixel Measures item is taken out of the SEG again: without a Frame
of Reference the SEG needs none, and it must not state a spacing the camera did
not (dciodvfy checks the result in tests).

Plain Python: no Django.
"""

from __future__ import annotations

import copy

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from export import seg as ct_seg
from export.dicom_common import MANUFACTURER, derived_uid, finish, source_images
from export.model import PackageInput, ReadRecord, ReferenceRecord, SeriesRecord
from export.volume import dense, finding_mask

ANATOMY = {"optic_disc": codes.SCT.OpticDiscStructure, "optic_cup": codes.SCT.AnatomicalStructure}
LESIONS = {"haemorrhage": codes.SCT.Hemorrhage}


def _property(finding_type: str) -> tuple:
    """(category, type) codes of a finding type's segment."""
    if finding_type in ANATOMY:
        return codes.SCT.AnatomicalStructure, ANATOMY[finding_type]
    return codes.SCT.MorphologicallyAbnormalStructure, LESIONS.get(finding_type, codes.SCT.Lesion)


def builder_source(ds: Dataset) -> Dataset:
    """The photograph's header as highdicom can build on it (see the module)."""
    if "SharedFunctionalGroupsSequence" in ds or "NumberOfFrames" not in ds:
        return ds
    shim = copy.copy(ds)
    measures = Dataset()
    measures.PixelSpacing = list(ds.get("PixelSpacing") or [1.0, 1.0])
    group = Dataset()
    group.PixelMeasuresSequence = Sequence([measures])
    shim.SharedFunctionalGroupsSequence = Sequence([group])
    return shim


def build(
    inp: PackageInput,
    series: SeriesRecord,
    items: list[tuple[str, str, dict, tuple | None]],
    key: str,
    series_number: int,
) -> hd.seg.Segmentation | None:
    """items: (label, finding_type, geometry, algorithm) per segment; None when none
    has an area."""
    photos = source_images(series)
    images = [builder_source(ds) for ds in photos]
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
        kind, ident = algorithm or (hd.seg.SegmentAlgorithmTypeValues.MANUAL, None)
        category, prop = _property(ftype)
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=len(planes),
                segment_label=f"{ftype} {label}"[:64],
                segmented_property_category=category,
                segmented_property_type=prop,
                algorithm_type=kind,
                algorithm_identification=ident,
                tracking_uid=derived_uid(inp, "seg-track", key, label),
                tracking_id=label[:64],
            )
        )
    if not planes:
        return None
    seg = hd.seg.Segmentation(
        source_images=images,
        pixel_array=np.stack(planes, axis=-1).astype(np.uint8),
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
    if "PixelSpacing" not in photos[0]:
        for group in seg.SharedFunctionalGroupsSequence:
            if "PixelMeasuresSequence" in group:
                del group.PixelMeasuresSequence
    if "FrameOfReferenceUID" not in seg and "PatientOrientation" not in seg:
        # General Image, Type 2C without a frame of reference: the photograph's, or empty
        seg.PatientOrientation = photos[0].get("PatientOrientation") or ""
    finish(seg, inp, key, photos[0])
    return seg


def for_read(inp: PackageInput, read: ReadRecord, series: SeriesRecord):
    return ct_seg.for_read(inp, read, series, build=build)


def for_reference(inp: PackageInput, series: SeriesRecord, refs: list[ReferenceRecord]):
    return ct_seg.for_reference(inp, series, refs, build=build)


def has_area(geometry: dict | None) -> bool:
    """Whether a finding's shape encloses an area (it then has a segment)."""
    return bool(geometry) and finding_mask(geometry) is not None


def write(out, inp: PackageInput, prefix: str = "", progress=None) -> None:
    ct_seg.write(out, inp, prefix, progress, build=build)
