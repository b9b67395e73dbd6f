"""Photographs (JPEG, PNG, TIFF) into de-identified DICOM, pure Python: no Django, no
database (like ``imaging.deid``). The ingest pipeline passes pseudonymous identifiers
from the manifest (``manifest.parse_manifest``) and stores what ``photo_to_dicom``
returns like any other instance.

Public API::

    decode_photo(data) -> DecodedPhoto(pixels, format, lossy, ...)
    photo_to_dicom(data, laterality=..., patient_id=..., study_id=...) -> Dataset
    parse_manifest(data) -> list[ManifestRow]    (raises ManifestError with every problem)
"""

from .convert import (
    OPHTHALMIC_PHOTOGRAPHY_8BIT,
    DecodedPhoto,
    PhotoError,
    decode_photo,
    dicom_bytes,
    photo_to_dicom,
)
from .manifest import COLUMNS, ManifestError, ManifestProblem, ManifestRow, parse_manifest

__all__ = [
    "COLUMNS",
    "OPHTHALMIC_PHOTOGRAPHY_8BIT",
    "DecodedPhoto",
    "ManifestError",
    "ManifestProblem",
    "ManifestRow",
    "PhotoError",
    "decode_photo",
    "dicom_bytes",
    "parse_manifest",
    "photo_to_dicom",
]
