"""Decoded pixels for the viewer, and window/level rendering (no Django here).

Everything is a small function over a pydicom Dataset and numpy arrays; nothing
is cached on local disk (storage may be remote; the HTTP layer caches by ETag).

Pixel values
    Decoding goes through pydicom (with the pylibjpeg plugins), so any transfer
    syntax they decode is served. Grayscale frames get the modality rescale that
    pydicom's ``apply_modality_lut`` applies (Modality LUT Sequence, else Rescale
    Slope/Intercept); enhanced multi-frame objects without top-level rescale use
    the frame's Pixel Value Transformation functional group. The result is sent as
    little-endian ``int16`` when every value is an integer within int16, else as
    ``float32`` (``float64`` only for integers beyond +-2**24, where float32 would
    change them). Colour frames (3 samples) are sent as RGB in their unsigned
    integer type (``uint8`` for ordinary 8-bit colour); pydicom has already
    converted YBR to RGB; their header's ``default_window`` is ``PHOTO_WINDOW`` (the
    viewer's brightness/contrast, identity as sent). PALETTE COLOR frames are sent
    as their stored indices (photometric says so); ``render_png`` applies the palette.

Record format (``application/vnd.refset.pixels``), one per frame::

    uint32 little-endian N | N bytes UTF-8 JSON header, space-padded so that
    4 + N is a multiple of 8 | header["nbytes"] bytes of pixels, row-major
    (rows x columns [x samples]) | zero bytes up to the next multiple of 8

So every record starts, and its pixel data starts, on an 8-byte boundary: a
browser can wrap the pixels in an Int16Array/Float32Array without copying. A
series body is these records concatenated in slice order (see ``iter_records``).
A frame that cannot be decoded inside a series body becomes a record whose
header has ``"error"`` and ``"nbytes": 0``. The viewer's series stream may put a
reduced rendition of a large first frame before it, a record whose header has
``"preview"`` (``preview_record``).

Default window
    The file's first window (or the input range of its VOI LUT) unless it spans the
    whole stored bit range, else the modality's first preset (CT: lung), else the
    0.5-99.5 percentiles of the values inside the body (``histogram_window``); the
    header says which (``window_source``). ``view`` carries a radiograph's markers
    (view position, laterality, patient orientation; ``view_markers``).
"""

from __future__ import annotations

import io
import json
import math
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut
from pydicom.pixels import pixel_array as _pixel_array
from pydicom.uid import UID

from annotation_server.imaging import headers

MEDIA_TYPE = "application/vnd.refset.pixels"
FORMAT_VERSION = "refset-pixels/1"
PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# Modality defaults offered after the file's own presets (centre/width in output units).
MODALITY_PRESETS: dict[str, list[dict[str, Any]]] = {
    "CT": [
        {"name": "lung", "center": -600.0, "width": 1500.0},
        {"name": "mediastinum", "center": 40.0, "width": 400.0},
        {"name": "bone", "center": 400.0, "width": 1800.0},
        {"name": "brain", "center": 40.0, "width": 80.0},
    ],
}


# The default window of an RGB frame: the viewer applies it to each 8-bit channel as
# brightness/contrast, (v - (center - width / 2)) / width (lut.js photoLevels), so
# this one shows the photograph as stored. (16-bit colour is shown from its high byte.)
PHOTO_WINDOW = {"center": 127.5, "width": 255.0}


class PixelError(Exception):
    """The pixels of an instance cannot be delivered (HTTP 422 with `as_dict()`)."""

    def __init__(self, message: str, *, code: str, transfer_syntax: str | None = None):
        super().__init__(message)
        self.code = code
        self.transfer_syntax = transfer_syntax

    def as_dict(self) -> dict[str, Any]:
        return {"detail": str(self), "code": self.code, "transfer_syntax": self.transfer_syntax}


@dataclass
class Frame:
    """One decoded frame: the values as sent and what the header says about them."""

    values: np.ndarray  # little-endian, wire dtype
    dtype: str
    rgb: bool
    photometric: str  # of `values` (RGB after pydicom's YBR conversion)
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> bytes:
        return self.values.tobytes()

    def record(self, extra: dict[str, Any] | None = None) -> bytes:
        header = {**self.header, **(extra or {})}
        return pack_record(header, self.payload)


# -- reading -------------------------------------------------------------------------


def read_dataset(data: bytes | BinaryIO) -> Dataset:
    """Parse a stored DICOM file (bytes or a binary file object)."""
    source = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    return pydicom.dcmread(source, force=True)


def transfer_syntax(ds: Dataset) -> str:
    """'Name (UID)' of the file's transfer syntax, or 'missing'."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if not uid:
        return "missing"
    uid = UID(str(uid))
    return f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)


def has_pixels(ds: Dataset) -> bool:
    return any(tag in ds for tag in PIXEL_TAGS)


def number_of_frames(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def _undecodable(ds: Dataset, exc: Exception) -> PixelError:
    ts = transfer_syntax(ds)
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    reason = " ".join(lines[:2]) if lines else type(exc).__name__
    return PixelError(
        f"Cannot decode the pixel data (transfer syntax {ts}): {reason}",
        code="undecodable",
        transfer_syntax=ts,
    )


def stored_frames(ds: Dataset, frames: Iterable[int] | None = None) -> dict[int, np.ndarray]:
    """Stored values of the wanted frames (all when None), as pydicom's pixel_array gives
    them (colour already RGB). Raises PixelError when there are none or they don't decode."""
    if not has_pixels(ds):
        raise PixelError("The instance has no pixel data.", code="no_pixel_data")
    n = number_of_frames(ds)
    wanted = list(range(n)) if frames is None else sorted(set(frames))
    if any(f < 0 or f >= n for f in wanted):
        raise PixelError(f"No such frame (the instance has {n}).", code="no_such_frame")
    try:
        if n == 1:
            return {0: ds.pixel_array}
        if len(wanted) == 1:
            return {wanted[0]: _pixel_array(ds, index=wanted[0])}
        arr = ds.pixel_array
        return {f: arr[f] for f in wanted}
    except Exception as exc:  # noqa: BLE001 - every decoder failure is the same 422
        raise _undecodable(ds, exc) from exc


# -- geometry and presets ---------------------------------------------------------


def _group_item(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """Frame `frame`'s item of a functional group `sequence`, else the shared one."""
    for groups, index in (
        ("PerFrameFunctionalGroupsSequence", frame),
        ("SharedFunctionalGroupsSequence", 0),
    ):
        seq = ds.get(groups)
        if not seq or index >= len(seq):
            continue
        inner = seq[index].get(sequence)
        if inner:
            return inner[0]
    return None


def _floats(value: Any) -> list[float] | None:
    if value is None or value == "":
        return None
    try:
        values = [float(v) for v in (value if hasattr(value, "__iter__") else [value])]
    except (TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def pixel_spacing(ds: Dataset, frame: int = 0) -> list[float] | None:
    """Row, column spacing in mm, or None when missing or zero (then measure in pixels)."""
    item = _group_item(ds, frame, "PixelMeasuresSequence")
    for value in (
        ds.get("PixelSpacing"),
        item.get("PixelSpacing") if item is not None else None,
        ds.get("ImagerPixelSpacing"),
    ):
        spacing = _floats(value)
        if spacing and len(spacing) == 2 and all(v > 0 for v in spacing):
            return spacing
    return None


def file_presets(ds: Dataset, frame: int = 0) -> list[dict[str, Any]]:
    """The file's window presets (top-level VOI LUT, else the frame's functional group)."""
    source: Dataset = ds
    if "WindowCenter" not in ds:
        item = _group_item(ds, frame, "FrameVOILUTSequence")
        if item is None:
            return []
        source = item
    centres = _floats(source.get("WindowCenter")) or []
    widths = _floats(source.get("WindowWidth")) or []
    names = source.get("WindowCenterWidthExplanation")
    if names is not None and not isinstance(names, pydicom.multival.MultiValue):
        names = [names]
    presets = []
    for i, (c, w) in enumerate(zip(centres, widths, strict=False)):
        if w <= 0:
            continue
        name = str(names[i]) if names and i < len(names) and str(names[i]) else f"file {i + 1}"
        presets.append({"name": name, "center": c, "width": w, "source": "file"})
    return presets


def modality_presets(modality: str) -> list[dict[str, Any]]:
    return [{**p, "source": "modality"} for p in MODALITY_PRESETS.get(modality.upper(), [])]


def voi_lut_preset(ds: Dataset, frame: int = 0) -> dict[str, Any] | None:
    """The linear window spanning the input range of the file's first VOI LUT
    (VOI LUT Sequence, top level or the frame's functional group), or None.

    The viewer windows linearly; a VOI LUT's own curve is not sent, but its input
    range (LUT Descriptor: number of entries, first value mapped) is the range the
    file's author chose to display, which is what a default window needs."""
    seq = ds.get("VOILUTSequence")
    if not seq:
        item = _group_item(ds, frame, "FrameVOILUTSequence")
        seq = item.get("VOILUTSequence") if item is not None else None
    if not seq:
        return None
    descriptor = _floats(seq[0].get("LUTDescriptor"))
    if not descriptor or len(descriptor) != 3:
        return None
    entries = descriptor[0] or 65536.0  # 0 means 2**16 (PS3.3 C.11.2.1.1)
    first = descriptor[1]
    explanation = str(seq[0].get("LUTExplanation") or "") or "VOI LUT"
    return {
        "name": explanation,
        "center": first + entries / 2,
        "width": entries,
        "source": "file",
    }


def _covers_stored_range(ds: Dataset, preset: dict[str, Any]) -> bool:
    """Whether a window is the whole range of the stored bits (a 12-bit detector's
    "WindowCenter 2048, WindowWidth 4096"): it says nothing about the anatomy and
    shows a radiograph washed out, so the default window comes from the pixels."""
    try:
        bits = int(ds.get("BitsStored") or 0)
        slope = abs(float(ds.get("RescaleSlope", 1) or 1))
    except (TypeError, ValueError):
        return False
    return bits > 0 and float(preset["width"]) >= 0.9 * (2**bits) * slope


# Share of the value range above the display-dark extreme counted as background
# (direct exposure outside the body, air around it) by `histogram_window`.
BACKGROUND_BAND = 0.05


def histogram_window(values: np.ndarray, *, dark_high: bool = False) -> dict[str, float] | None:
    """A window from the image's own histogram: the 0.5th to 99.5th percentile of
    the values inside the body (those not within BACKGROUND_BAND of the range
    from the extreme that displays darkest: the lowest values, or the highest for
    MONOCHROME1, `dark_high`), on every 4th pixel of every 4th row.

    This is what "auto" windowing does in PACS viewers: the full range would be
    dominated by the background and by a few saturated pixels."""
    if values is None or values.size == 0:
        return None
    sample = values[::4, ::4] if values.ndim == 2 and min(values.shape) >= 64 else values
    sample = np.asarray(sample, dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return None
    lo, hi = float(sample.min()), float(sample.max())
    band = (hi - lo) * BACKGROUND_BAND
    body = sample[sample < hi - band] if dark_high else sample[sample > lo + band]
    if body.size < max(16, sample.size // 20):  # no background to speak of
        body = sample
    p_lo, p_hi = (float(v) for v in np.percentile(body, [0.5, 99.5]))
    if p_hi <= p_lo:
        p_lo, p_hi = lo, hi
    return {"center": (p_lo + p_hi) / 2, "width": max(p_hi - p_lo, 1.0)}


def default_window(
    presets: list[dict[str, Any]],
    values: np.ndarray | None = None,
    *,
    trivial: Iterable[str] = (),
    dark_high: bool = False,
) -> dict[str, float] | None:
    """The first preset (the file's come first) whose name is not in `trivial`
    (file windows that span the whole stored range), else `histogram_window`."""
    skip = set(trivial)
    for preset in presets:
        if not (preset.get("source") == "file" and preset["name"] in skip):
            return {"center": preset["center"], "width": preset["width"]}
    return histogram_window(values, dark_high=dark_high) if values is not None else None


def window_source(presets: list[dict[str, Any]], window: dict[str, float] | None) -> str:
    """Where a default window came from: "file", "modality" or "histogram"."""
    for preset in presets:
        if window and (preset["center"], preset["width"]) == (window["center"], window["width"]):
            return str(preset.get("source") or "file")
    return "histogram"


def _letters(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    items = list(value) if isinstance(value, pydicom.multival.MultiValue | list) else [value]
    return [str(v).strip().upper() for v in items]


def view_markers(ds: Dataset) -> dict[str, Any] | None:
    """What a radiograph's markers say, from its header: the view (ViewPosition:
    PA, AP, LL...), the laterality of the imaged part (ImageLaterality, else the
    series' Laterality: L or R only, U and B are not marked) and the patient
    directions of the rows and columns (PatientOrientation, e.g. ["L", "F"]).
    None when the header has none of them."""
    position = headers.view_position(ds)
    laterality = headers.laterality(ds)
    laterality = laterality if laterality in ("L", "R") else ""
    orientation = _letters(ds.get("PatientOrientation"))
    valid = set("LRAPHF")
    if len(orientation) != 2 or not all(o and set(o) <= valid for o in orientation):
        orientation = []
    if not (position or laterality or orientation):
        return None
    return {"position": position, "laterality": laterality, "orientation": orientation}


# -- modality rescale and wire types -----------------------------------------------


def modality_rescale(
    ds: Dataset, arr: np.ndarray, frame: int = 0
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Apply the modality LUT or rescale; returns (values, what was applied or None)."""
    if arr.ndim == 3 or str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        return arr, None
    if ds.get("ModalityLUTSequence"):
        return apply_modality_lut(arr, ds), {"modality_lut": True}
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    else:
        item = _group_item(ds, frame, "PixelValueTransformationSequence")
        if item is None or "RescaleSlope" not in item or "RescaleIntercept" not in item:
            return arr, None
        slope, intercept = float(item.RescaleSlope), float(item.RescaleIntercept)
    info = {"slope": slope, "intercept": intercept}
    if arr.dtype.kind in "iu" and slope.is_integer() and intercept.is_integer():
        # Exact in integers, and several times faster than going through float64.
        return arr.astype(np.int64) * int(slope) + int(intercept), info
    out = arr.astype(np.float64) * slope
    out += intercept
    return out, info


_INT16 = np.dtype("<i2")
_FLOAT32 = np.dtype("<f4")
_FLOAT64 = np.dtype("<f8")


def to_wire(values: np.ndarray, *, rgb: bool = False) -> tuple[np.ndarray, str]:
    """Little-endian array to send and its dtype name."""
    if rgb:
        kind = values.dtype if values.dtype.kind == "u" else np.dtype(np.uint8)
        wire = kind.newbyteorder("<")
        return np.ascontiguousarray(values, dtype=wire), wire.name
    if values.size == 0:
        return np.ascontiguousarray(values, dtype=_INT16), "int16"
    if values.dtype.kind in "iub":
        integral, lo, hi = True, int(values.min()), int(values.max())
    else:
        finite = bool(np.isfinite(values).all())
        integral = finite and bool((values == np.round(values)).all())
        lo, hi = (float(values.min()), float(values.max())) if finite else (0.0, 0.0)
    if integral and lo >= -32768 and hi <= 32767:
        return np.ascontiguousarray(values, dtype=_INT16), "int16"
    if integral and max(abs(lo), abs(hi)) > 2**24:
        return np.ascontiguousarray(values, dtype=_FLOAT64), "float64"
    return np.ascontiguousarray(values, dtype=_FLOAT32), "float32"


def build_frame(ds: Dataset, stored: np.ndarray, frame: int = 0) -> Frame:
    """Rescale one stored frame and describe it."""
    rgb = stored.ndim == 3
    values, rescale = modality_rescale(ds, stored, frame)
    wire, dtype = to_wire(values, rgb=rgb)
    source_photometric = str(ds.get("PhotometricInterpretation", ""))
    photometric = "RGB" if rgb else source_photometric
    presets: list[dict[str, Any]] = []
    window = None
    if not rgb:
        own = file_presets(ds, frame)
        voi = None if own else voi_lut_preset(ds, frame)
        own = own + ([voi] if voi else [])
        presets = own + modality_presets(ds.get("Modality", ""))
        trivial = [p["name"] for p in own if _covers_stored_range(ds, p)]
        dark_high = photometric == "MONOCHROME1"
        window = default_window(presets, wire, trivial=trivial, dark_high=dark_high)
    else:
        window = dict(PHOTO_WINDOW)
    header = {
        "format": FORMAT_VERSION,
        "frame": frame,
        "rows": int(wire.shape[0]),
        "columns": int(wire.shape[1]),
        "samples_per_pixel": 3 if rgb else 1,
        "dtype": dtype,
        "nbytes": int(wire.nbytes),
        "rgb": rgb,
        "photometric": photometric,
        "source_photometric": source_photometric,
        "invert": photometric == "MONOCHROME1",
        "pixel_spacing": pixel_spacing(ds, frame),
        "rescale": rescale,
        "window_presets": presets,
        "default_window": window,
        "window_source": None if rgb else window_source(presets, window),
        "view": view_markers(ds),
    }
    return Frame(values=wire, dtype=dtype, rgb=rgb, photometric=photometric, header=header)


def decode_frame(ds: Dataset, frame: int = 0) -> Frame:
    return build_frame(ds, stored_frames(ds, [frame])[frame], frame)


def decode_frames(ds: Dataset, frames: Iterable[int] | None = None) -> dict[int, Frame]:
    return {f: build_frame(ds, arr, f) for f, arr in stored_frames(ds, frames).items()}


# -- records ----------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def pack_record(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One length-prefixed record (see the module docstring)."""
    header = {**header, "nbytes": len(payload)}
    text = json.dumps(_json_safe(header), separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * ((-(4 + len(text))) % 8)
    return b"".join((struct.pack("<I", len(text)), text, payload, b"\0" * ((-len(payload)) % 8)))


# A frame (grayscale or RGB) of at least this many pixels at the head of a series stream is
# preceded by a reduced rendition of about PREVIEW_PIXELS (`preview_record`): the
# viewer paints it while the full frame (15 MB for a 3000 x 2500 radiograph) loads.
PREVIEW_MIN_PIXELS = 2_000_000
PREVIEW_PIXELS = 600_000


def preview_factor(rows: int, columns: int) -> int:
    """The integer reduction of a frame's preview (1: no preview)."""
    if rows * columns < PREVIEW_MIN_PIXELS:
        return 1
    return max(2, math.ceil(math.sqrt(rows * columns / PREVIEW_PIXELS)))


def preview_record(frame: Frame, extra: dict[str, Any] | None = None) -> bytes | None:
    """A reduced rendition of a large frame (grayscale, or RGB channel by channel) as
    a record, or None.

    The values are the means of factor x factor blocks (the last partial row and
    column of blocks dropped) in the frame's own wire type; the header is the
    frame's (its default window and presets computed on the full frame, its pixel
    spacing the full frame's) with the reduced rows and columns, plus
    ``"preview": {"factor", "rows", "columns"}`` giving the full frame's size. A
    reader of the stream that wants only full frames skips records with "preview"."""
    if frame.values.ndim != (3 if frame.rgb else 2):
        return None
    rows, columns = frame.values.shape[:2]
    k = preview_factor(rows, columns)
    if k == 1:
        return None
    r, c = rows // k, columns // k
    # an RGB frame's samples are averaged channel by channel
    blocks = frame.values[: r * k, : c * k].reshape(r, k, c, k, *frame.values.shape[2:])
    means = blocks.mean(axis=(1, 3), dtype=np.float64)
    if frame.values.dtype.kind in "iu":
        means = np.rint(means)
    small = np.ascontiguousarray(means, dtype=frame.values.dtype)
    header = {
        **frame.header,
        **(extra or {}),
        "rows": r,
        "columns": c,
        "preview": {"factor": k, "rows": rows, "columns": columns},
    }
    return pack_record(header, small.tobytes())


def error_record(error: PixelError, extra: dict[str, Any] | None = None) -> bytes:
    return pack_record({"format": FORMAT_VERSION, **(extra or {}), "error": error.as_dict()})


def iter_records(data: bytes | memoryview) -> Iterator[tuple[dict[str, Any], np.ndarray | None]]:
    """Parse a body of records: (header, pixels shaped rows x columns [x 3]) per frame."""
    view = memoryview(data)
    offset = 0
    while offset < len(view):
        (n,) = struct.unpack_from("<I", view, offset)
        header = json.loads(bytes(view[offset + 4 : offset + 4 + n]))
        start = offset + 4 + n
        nbytes = header["nbytes"]
        pixels = None
        if "error" not in header:
            shape = (header["rows"], header["columns"])
            if header.get("samples_per_pixel", 1) > 1:
                shape += (header["samples_per_pixel"],)
            dtype = np.dtype(header["dtype"]).newbyteorder("<")
            pixels = np.frombuffer(view[start : start + nbytes], dtype=dtype)
            pixels = pixels.reshape(shape)
        offset = start + nbytes + (-nbytes) % 8
        yield header, pixels


# -- rendering --------------------------------------------------------------------


def window_uint8(values: np.ndarray, center: float, width: float, *, invert: bool = False):
    """Linear window/level to 0..255 (MONOCHROME1 inverted)."""
    width = max(float(width), 1e-6)
    lo = float(center) - width / 2
    scaled = (values.astype(np.float32) - lo) * (255.0 / width)
    out = np.clip(scaled, 0, 255).astype(np.uint8)
    return 255 - out if invert else out


def _rgb_uint8(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    top = float(values.max()) if values.size else 0.0
    peak = 255.0 if top <= 255 else float(np.iinfo(values.dtype).max) if top else 1.0
    return np.clip(values.astype(np.float64) * (255.0 / peak), 0, 255).astype(np.uint8)


def render_image(
    ds: Dataset,
    frame: Frame,
    *,
    center: float | None = None,
    width: float | None = None,
) -> Image.Image:
    """8-bit Pillow image of a frame: grayscale windowed, colour as RGB."""
    if frame.rgb:
        return Image.fromarray(_rgb_uint8(frame.values), "RGB")
    if frame.photometric == "PALETTE COLOR" and center is None:
        try:
            return Image.fromarray(_rgb_uint8(apply_color_lut(frame.values, ds)), "RGB")
        except Exception:  # noqa: BLE001 - fall back to grayscale indices
            pass
    window = frame.header.get("default_window") or {"center": 0.0, "width": 1.0}
    c = window["center"] if center is None else center
    w = window["width"] if width is None else width
    return Image.fromarray(window_uint8(frame.values, c, w, invert=frame.header["invert"]), "L")


def render_png(
    ds: Dataset,
    frame: Frame,
    *,
    center: float | None = None,
    width: float | None = None,
    size: int | None = None,
) -> bytes:
    """PNG of a frame; with `size`, a thumbnail fitting size x size (aspect kept)."""
    image = render_image(ds, frame, center=center, width=width)
    if size:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def raw_frame_bytes(ds: Dataset, frame: int) -> bytes:
    """Stored values of one frame, uncompressed little-endian (for WADO-RS frames)."""
    arr = stored_frames(ds, [frame])[frame]
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
