"""The CPU-bound half of ingest, per file: parse, validate, de-identify, encode.

No Django here (it runs in worker processes that never touch the database):
plain bytes in, plain results out. The pipeline stores, indexes and reports.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import pydicom
from pydicom.errors import InvalidDicomError

from annotation_server.imaging.deid import Deidentifier, Mapping

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


class FileRejected(Exception):
    """A file cannot be imported; the message is the reason shown to the user."""


@dataclass
class Prepared:
    name: str
    reason: str = ""  # set when the file is rejected
    data: bytes = b""  # the de-identified file, encoded
    header: pydicom.Dataset | None = None  # its header, without pixel data
    mappings: list[Mapping] = field(default_factory=list)
    quarantine_reason: str | None = None

    @property
    def rejected(self) -> bool:
        return bool(self.reason)


def parse(data: bytes) -> pydicom.Dataset:
    if not data:
        raise FileRejected("empty file (0 bytes)")
    if data[128:132] != b"DICM" and data[:2] == b"\x02\x00":
        data = b"\0" * 128 + b"DICM" + data  # file meta without the preamble (STOW, some PACS)
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except InvalidDicomError:
        raise FileRejected("not a DICOM file (no DICM preamble, no DICOM header)") from None
    except Exception as exc:  # pydicom raises many kinds on corrupt input
        raise FileRejected(f"corrupt or truncated DICOM ({type(exc).__name__}: {exc})") from None
    meta_class = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
    if meta_class == DICOMDIR_CLASS or "DirectoryRecordSequence" in ds:
        raise FileRejected("DICOMDIR (an index of other files, not an image): skipped")
    missing = [k for k in REQUIRED_UIDS if not str(ds.get(k, "") or "").strip()]
    if missing:
        raise FileRejected(f"missing required attribute(s): {', '.join(missing)}")
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise FileRejected(f"no pixel data ({ds.get('Modality', '?')} object, not an image)")
    for attr in ("Rows", "Columns", "BitsAllocated"):
        if attr not in ds:
            raise FileRejected(f"image without {attr}")
    check_pixels(ds)
    return ds


def check_pixels(ds: pydicom.Dataset) -> None:
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None:
        raise FileRejected("no transfer syntax in the file meta information")
    ts = pydicom.uid.UID(str(ts))
    if ts.is_compressed:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            raise FileRejected(f"unsupported transfer syntax {ts.name} ({ts}): cannot decode")
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.BitsAllocated)
    expected = ds.Rows * ds.Columns * samples * frames * bits // 8
    have = len(ds.PixelData) if "PixelData" in ds else expected
    if have < expected:
        raise FileRejected(f"truncated pixel data: {have} bytes, {expected} expected")


def encode(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def prepare(deid: Deidentifier, name: str, data: bytes) -> Prepared:
    """Everything about one file that needs no database."""
    try:
        ds = parse(data)
        result = deid.apply(ds, in_place=True)
        clean = result.dataset
        encoded = encode(clean)
    except FileRejected as exc:
        return Prepared(name, reason=str(exc))
    except (ValueError, TypeError, KeyError) as exc:
        return Prepared(name, reason=f"invalid attribute value in the file ({exc})")
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in clean:
            delattr(clean, keyword)  # keep only the header in memory
    return Prepared(
        name,
        data=encoded,
        header=clean,
        mappings=result.mappings,
        quarantine_reason=result.quarantine_reason,
    )
