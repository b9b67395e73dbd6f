"""A photograph file -> an Ophthalmic Photography 8 Bit Image, de-identified by construction.

Nothing of the source file is copied but its decoded pixels:

- The file is decoded with Pillow; EXIF, XMP, IPTC, ICC profiles (and their text), JPEG
  comments, PNG text chunks and TIFF tags are never read into the dataset (the only
  thing read from them is the EXIF orientation, applied to the pixels so the image
  stands as the camera meant it). The original file name is not an argument at all.
- Every identifying attribute comes from the arguments: the ingest passes the
  pseudonyms of the manifest's patient and visit (keyed pseudonymisation, key store),
  the laterality (OD -> ImageLaterality R, OS -> L), and the UIDs it minted (new
  2.25 UIDs are generated when none are given). Birth date, sex, study date and time
  are left empty (Type 2).
- Content and acquisition date/time (Type 1 in the OP Image module) are the caller's
  ``content_datetime`` (for instance a visit date shifted like DICOM dates); by default
  the time of conversion, which says nothing about the visit.

Pixels: stored uncompressed, PhotometricInterpretation RGB (or MONOCHROME2 for a grey
file), 8 bits, PlanarConfiguration 0, Explicit VR Little Endian. We do not keep a JPEG
source's bitstream as YBR_FULL_422: that would carry the file's APPn segments unless
rewritten marker by marker, and the stored pixels would depend on the viewer's JPEG
decoder; decoding once and storing the decoded samples makes the DICOM equal, bit for
bit, to what Pillow decoded (checked before returning), at about 3 bytes a pixel. A
JPEG source is still declared lossy (LossyImageCompression 01, ISO_10918_1, its ratio).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

OPHTHALMIC_PHOTOGRAPHY_8BIT = "1.2.840.10008.5.1.4.1.1.77.1.5.1"
FORMATS = {"JPEG": "ISO_10918_1", "MPO": "ISO_10918_1", "PNG": None, "TIFF": None}
LATERALITY = {"OD": "R", "OS": "L", "R": "R", "L": "L", "RIGHT": "R", "LEFT": "L"}
UTC_SYNCHRONIZATION = "1.2.840.10008.15.1.1"  # Universal Coordinated Time (PS3.6 A)
MAX_PIXELS = 60_000_000  # 60 MP: larger than any fundus camera; guards decompression bombs


class PhotoError(ValueError):
    """The file is not a photograph we can store (format, bit depth, size, arguments)."""


@dataclass(frozen=True)
class DecodedPhoto:
    pixels: np.ndarray  # uint8, rows x cols x 3 (RGB) or rows x cols (grey)
    format: str  # Pillow's format name: JPEG, PNG, TIFF, MPO
    lossy: bool  # the source was JPEG
    source_bytes: int

    @property
    def photometric(self) -> str:
        return "RGB" if self.pixels.ndim == 3 else "MONOCHROME2"


def decode_photo(data: bytes) -> DecodedPhoto:
    """Decode JPEG/PNG/TIFF bytes to 8-bit pixels (orientation applied); no metadata kept."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = (im.format or "").upper()
            if fmt not in FORMATS:
                raise PhotoError(f"not a JPEG, PNG or TIFF photograph ({fmt or 'unknown'})")
            if im.width * im.height > MAX_PIXELS:
                raise PhotoError(f"image too large: {im.width} x {im.height} pixels")
            im.load()
            im = ImageOps.exif_transpose(im)
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                raise PhotoError(f"{mode} pixels: only 8-bit photographs are accepted")
            if mode in ("L", "LA", "1"):
                arr = np.asarray(im.convert("L"), dtype=np.uint8)
            else:  # RGB, RGBA (alpha dropped), P, CMYK, YCbCr ...
                arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
    except PhotoError:
        raise
    except Exception as exc:  # Pillow's UnidentifiedImageError, truncated files, bombs
        raise PhotoError(f"cannot decode the photograph: {exc.__class__.__name__}: {exc}")
    if min(arr.shape[:2]) < 1:
        raise PhotoError("empty image")
    return DecodedPhoto(np.ascontiguousarray(arr), fmt, FORMATS[fmt] is not None, len(data))


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def photo_to_dicom(
    data: bytes | DecodedPhoto,
    *,
    laterality: str,
    patient_id: str,
    study_id: str,
    patient_name: str | None = None,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    series_number: int = 1,
    instance_number: int = 1,
    content_datetime: dt.datetime | None = None,
    manufacturer: str = "",
    model: str = "",
    patient_age: str | None = None,
    burned_in_annotation: bool = False,
) -> Dataset:
    """An Ophthalmic Photography 8 Bit Image of the photograph ``data`` (file bytes).

    ``patient_id`` / ``patient_name`` / ``study_id`` are the pseudonyms to record (never
    the manifest's originals); ``study_id`` also becomes StudyID. ``manufacturer`` and
    ``model`` come from the manifest's camera column, not from the file.
    ``burned_in_annotation`` is the burned-in text detector's verdict.
    """
    photo = data if isinstance(data, DecodedPhoto) else decode_photo(data)
    lat = LATERALITY.get(str(laterality).strip().upper())
    if lat is None:
        raise PhotoError(f"laterality must be OD or OS, not {laterality!r}")
    if not str(patient_id).strip() or not str(study_id).strip():
        raise PhotoError("patient_id and study_id are required")
    when = content_datetime or dt.datetime.now(dt.UTC)
    pixels = photo.pixels
    rows, cols = pixels.shape[:2]
    rgb = pixels.ndim == 3
    sop_uid = sop_uid or generate_uid(prefix=None)

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = OPHTHALMIC_PHOTOGRAPHY_8BIT
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    # SOP Common
    ds.SOPClassUID = OPHTHALMIC_PHOTOGRAPHY_8BIT
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    # Patient (identifiers are the caller's pseudonyms)
    ds.PatientName = patient_name if patient_name is not None else f"{patient_id}^"
    ds.PatientID = str(patient_id)
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "RefSet photo import: pixels only, metadata and file name dropped"
    if patient_age:
        ds.PatientAge = patient_age
    # General Study
    ds.StudyInstanceUID = study_uid or generate_uid(prefix=None)
    # the visit date lives only in the dropped metadata: recorded only when the caller
    # gives one (e.g. shifted like DICOM dates), else empty
    ds.StudyDate = content_datetime.strftime("%Y%m%d") if content_datetime else ""
    ds.StudyTime = content_datetime.strftime("%H%M%S") if content_datetime else ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = str(study_id)[:16]
    ds.AccessionNumber = ""
    # General Series + Ophthalmic Photography Series
    ds.Modality = "OP"
    ds.SeriesInstanceUID = series_uid or generate_uid(prefix=None)
    ds.SeriesNumber = series_number
    # General Equipment
    ds.Manufacturer = manufacturer
    if model:
        ds.ManufacturerModelName = model
    # General Image + Ophthalmic Photography Image
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.ContentDate = when.strftime("%Y%m%d")
    ds.ContentTime = when.strftime("%H%M%S")
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES" if burned_in_annotation else "NO"
    if photo.lossy:
        ds.LossyImageCompression = "01"
        ratio = (pixels.size) / max(1, photo.source_bytes)
        ds.LossyImageCompressionRatio = f"{ratio:.2f}"[:16]
        ds.LossyImageCompressionMethod = "ISO_10918_1"
    else:
        ds.LossyImageCompression = "00"
    # Image Pixel
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else "MONOCHROME2"
    if rgb:
        ds.PlanarConfiguration = 0
    else:
        ds.PresentationLUTShape = "IDENTITY"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelRepresentation = 0
    # Multi-frame (Type 1 for this IOD even for one frame) and Cine: frames by time
    ds.NumberOfFrames = 1
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.FrameTime = "0"
    # Synchronization: not synchronised with any other image, UTC as the time base
    ds.SynchronizationFrameOfReferenceUID = UTC_SYNCHRONIZATION
    ds.SynchronizationTrigger = "NO TRIGGER"
    ds.AcquisitionTimeSynchronized = "N"
    # Acquisition Context (Type 2: present, empty)
    ds.AcquisitionContextSequence = Sequence([])
    # Ocular Region Imaged
    ds.ImageLaterality = lat
    ds.AnatomicRegionSequence = Sequence([_code("5665001", "SCT", "Retina")])
    # Ophthalmic Photography Acquisition Parameters (Type 2: unknown from a bare file)
    ds.PatientEyeMovementCommanded = ""
    ds.HorizontalFieldOfView = None
    ds.EmmetropicMagnification = None
    ds.IntraOcularPressure = None
    ds.PupilDilated = ""
    ds.RefractiveStateSequence = Sequence([])
    # Ophthalmic Photographic Parameters
    ds.AcquisitionDeviceTypeCodeSequence = Sequence([_code("409898007", "SCT", "Fundus Camera")])
    ds.IlluminationTypeCodeSequence = Sequence([])
    ds.LightPathFilterTypeStackCodeSequence = Sequence([])
    ds.ImagePathFilterTypeStackCodeSequence = Sequence([])
    ds.LensesCodeSequence = Sequence([])
    ds.DetectorType = "CCD"
    raw = pixels.tobytes()
    ds.PixelData = raw + (b"\0" if len(raw) % 2 else b"")
    ds["PixelData"].VR = "OB"
    check_pixels(ds, photo.pixels)
    return ds


def check_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    """Raise PhotoError unless the dataset's decoded pixels equal ``pixels`` exactly."""
    stored = np.asarray(ds.pixel_array)
    if stored.shape != pixels.shape or not np.array_equal(stored, pixels):
        raise PhotoError("stored pixels differ from the decoded photograph")


def dicom_bytes(ds: Dataset) -> bytes:
    """The Part 10 file bytes of ``ds``."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
