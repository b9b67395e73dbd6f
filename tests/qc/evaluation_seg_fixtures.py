"""DICOM SEG submissions built on the synthetic CT of tests/export/builders.py.

`version(tmp)` is a two-case version (8 slices of 64x64, 0.7 mm pixels,
1.25 mm slices) and its Truth; `seg_bytes` writes a product's SEG over one
series from dense per-segment masks with highdicom, the way export/seg.py
writes the reference SEG (frames referencing the de-identified images).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from export.dicom_common import source_images
from qc.evaluation.truth import truth_from_package
from tests.export.builders import make_input


def version(tmp: Path):
    inp, _ = make_input(tmp, cases=2, slices=8, matrix=64)
    return inp, truth_from_package(inp)


def seg_dataset(series, masks: list[np.ndarray], labels=None, descriptions=None) -> pydicom.Dataset:
    """A BINARY SEG with one segment per dense (slices, rows, cols) mask."""
    images = source_images(series)
    segments = []
    for n, _ in enumerate(masks, start=1):
        desc = hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=(labels or {}).get(n, f"lesion {n}"),
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Nodule,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="product", family=codes.cid7162.ArtificialIntelligence, version="1"
            ),
        )
        if descriptions and n in descriptions:
            desc.SegmentDescription = descriptions[n]
        segments.append(desc)
    pixels = np.stack([np.asarray(m, dtype=np.uint8) for m in masks], axis=-1)
    return hd.seg.Segmentation(
        source_images=images,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments,
        series_instance_uid=hd.UID(),
        series_number=300,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Product",
        manufacturer_model_name="Model",
        software_versions="1",
        device_serial_number="1",
        omit_empty_frames=True,
    )


def to_bytes(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def seg_bytes(series, masks, labels=None, descriptions=None) -> bytes:
    return to_bytes(seg_dataset(series, masks, labels, descriptions))


def zipped(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def box(shape, lo, hi) -> np.ndarray:
    """A dense mask with the box [lo, hi) (slice, row, col) set."""
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return m


def seg_of_type(series, pixels: np.ndarray, kind: str, segments: int) -> bytes:
    """A LABELMAP (pixels: segment numbers) or FRACTIONAL (pixels: (..., segments)
    fractions in [0, 1]) SEG with segments labelled s1, s2, ..."""
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=f"s{n}",
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Nodule,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n in range(1, segments + 1)
    ]
    extra = {"max_fractional_value": 255} if kind == "FRACTIONAL" else {}
    seg = hd.seg.Segmentation(
        source_images=source_images(series),
        pixel_array=pixels,
        segmentation_type=getattr(hd.seg.SegmentationTypeValues, kind),
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=301,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="Product",
        manufacturer_model_name="Model",
        software_versions="1",
        device_serial_number="1",
        **extra,
    )
    return to_bytes(seg)
