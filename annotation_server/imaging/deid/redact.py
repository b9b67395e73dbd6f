"""Redaction of burned-in text (PS3.15 Clean Pixel Data Option), pure pydicom + numpy.

``redact_dataset`` returns a new de-identified instance made from a quarantined one:

- the boxes (x, y, width, height in image pixels; clipped to the image) are set, in
  every frame, to the value that displays black: the minimum stored value of the
  image (its maximum for MONOCHROME1, 0 in every channel for colour);
- the pixel data is written uncompressed (Explicit VR Little Endian), colour as RGB;
- the instance gets a new SOP Instance UID (the caller derives it with the project's
  de-identification secret, as the engine derives every UID), BurnedInAnnotation NO,
  and "Clean Pixel Data Option" (DCM 113101) added to DeidentificationMethod and
  DeidentificationMethodCodeSequence.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

CODE_CLEAN_PIXEL_DATA = ("113101", "Clean Pixel Data Option")
METHOD_CLEAN_PIXEL_DATA = "Clean Pixel Data Option (RefSet manual redaction)"
MAX_BOXES = 200


class RedactionError(ValueError):
    """The boxes or the image cannot be redacted; the message says why."""


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


def clean_boxes(boxes: object, rows: int, columns: int) -> list[Box]:
    """Boxes from JSON-like input, clipped to a rows x columns image; empty ones dropped.

    Raises RedactionError on anything that is not a list of {x, y, width, height}
    numbers (at most MAX_BOXES)."""
    if not isinstance(boxes, list):
        raise RedactionError("boxes must be a list of {x, y, width, height}")
    if len(boxes) > MAX_BOXES:
        raise RedactionError(f"at most {MAX_BOXES} boxes")
    out: list[Box] = []
    for item in boxes:
        if not isinstance(item, dict):
            raise RedactionError("boxes must be a list of {x, y, width, height}")
        try:
            x, y, w, h = (float(item[k]) for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError):
            raise RedactionError("each box needs numeric x, y, width and height") from None
        if not all(np.isfinite(v) for v in (x, y, w, h)):
            raise RedactionError("each box needs numeric x, y, width and height")
        if w < 0:
            x, w = x + w, -w
        if h < 0:
            y, h = y + h, -h
        x0, y0 = max(0, int(np.floor(x))), max(0, int(np.floor(y)))
        x1, y1 = min(columns, int(np.ceil(x + w))), min(rows, int(np.ceil(y + h)))
        if x1 > x0 and y1 > y0:
            box = Box(x0, y0, x1 - x0, y1 - y0)
            if box not in out:
                out.append(box)
    return out


def black_value(arr: np.ndarray, photometric: str) -> int | float:
    """The stored value that displays black in this image."""
    if arr.ndim >= 3 and arr.shape[-1] == 3 and photometric not in ("MONOCHROME1", "MONOCHROME2"):
        return 0
    if photometric == "MONOCHROME1":
        return arr.max()
    return arr.min()


def redact_array(arr: np.ndarray, boxes: list[Box], fill, *, frames: bool) -> np.ndarray:
    """A copy of ``arr`` (rows x columns [x samples], with a leading frame axis when
    ``frames``) with every box set to ``fill``."""
    out = np.array(arr, copy=True)
    for b in boxes:
        if frames:
            out[:, b.y : b.y + b.height, b.x : b.x + b.width, ...] = fill
        else:
            out[b.y : b.y + b.height, b.x : b.x + b.width, ...] = fill
    return out


def redact_dataset(ds: Dataset, boxes: list[Box], new_sop_instance_uid: str) -> Dataset:
    """A redacted copy of ``ds`` (see the module docstring); ``ds`` is not changed."""
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - every decoder failure reads the same
        raise RedactionError(f"the pixel data cannot be decoded ({exc})") from exc
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1) > 1
    source_photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    photometric = "RGB" if samples == 3 else source_photometric
    redacted = redact_array(arr, boxes, black_value(arr, photometric), frames=frames)
    out = copy.deepcopy(ds)
    bits_stored = int(getattr(ds, "BitsStored", arr.dtype.itemsize * 8))
    out.set_pixel_data(redacted, photometric, min(bits_stored, arr.dtype.itemsize * 8))
    out.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    # LossyImageCompression and its ratio/method are kept: a lossy original stays lossy.
    out.SOPInstanceUID = new_sop_instance_uid
    out.file_meta.MediaStorageSOPInstanceUID = new_sop_instance_uid
    out.BurnedInAnnotation = "NO"
    out.PatientIdentityRemoved = "YES"
    methods = getattr(out, "DeidentificationMethod", None)
    multiple = isinstance(methods, (list, tuple, MultiValue))
    methods = [str(m) for m in methods] if multiple else [str(methods or "")]
    methods = [m for m in methods if m and m != METHOD_CLEAN_PIXEL_DATA]
    out.DeidentificationMethod = [*methods, METHOD_CLEAN_PIXEL_DATA]
    codes = list(getattr(out, "DeidentificationMethodCodeSequence", []) or [])
    if not any(str(getattr(c, "CodeValue", "")) == CODE_CLEAN_PIXEL_DATA[0] for c in codes):
        item = Dataset()
        item.CodeValue = CODE_CLEAN_PIXEL_DATA[0]
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = CODE_CLEAN_PIXEL_DATA[1]
        codes.append(item)
    out.DeidentificationMethodCodeSequence = Sequence(codes)
    return out
