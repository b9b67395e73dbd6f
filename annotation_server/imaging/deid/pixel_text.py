"""Text burned into pixel data (PS3.15 Clean Pixel Data): where it is and what it says.

Pure numpy + Tesseract (through pytesseract; the Debian packages ``tesseract-ocr``,
``tesseract-ocr-eng`` and ``tesseract-ocr-chi-sim``). No Django: ingest workers call
it on decoded frames, the quarantine review calls it again to suggest boxes.

How an image is read, and why:

- Text burned in by scanners, ultrasound machines and screen captures sits in the
  corners and along the borders, and it is a bright overlay (usually the maximum
  value of the image, sometimes on a black box). The image is first turned into
  display polarity (MONOCHROME1 inverted, colour reduced to its brightest channel).
- Five regions are looked at: the top and bottom bands (full width, a quarter of
  the height each: the four corners and the top and bottom borders), and the left
  and right borders between them (a quarter of the width each).
- A cheap screen comes first: glyph strokes give many sharp steps per row (at least
  four steps of 60 % of the image's range), anatomy and noise at most two. Only
  regions with at least ``MIN_TEXT_ROWS`` such rows are read by Tesseract, so a CT
  series without text costs no OCR call at all.
- A region is windowed for OCR from halfway between its median and the image's
  maximum up to that maximum (the bright overlay keeps full contrast, tissue
  fades), inverted (dark text on white, as Tesseract expects), and enlarged so
  glyphs are about 30 pixels high.
- Tesseract reads it with ``chi_sim+eng`` in sparse-text mode. A word counts when
  its confidence is at least ``MIN_CONFIDENCE`` and it holds two letters or digits,
  or one Chinese character, or (at any confidence) when it looks like an identifier
  or a date (six letters and digits, three of them digits); the image carries text
  when the counted words hold at least ``MIN_CHARACTERS`` such characters.

When Tesseract is not installed, regions that pass the screen are reported as
text-like (``ocr=False``): an image is never admitted because OCR was missing.
"""

from __future__ import annotations

import functools
import re
import shutil
from dataclasses import asdict, dataclass, field

import numpy as np

LANGUAGES = "chi_sim+eng"
MIN_TEXT_ROWS = 3  # rows with >= 4 sharp steps for a region to be read
MIN_STEPS_PER_ROW = 4
STEP_FRACTION = 0.6  # of the image's range (1st percentile to maximum)
MIN_CONFIDENCE = 55.0
MIN_CHARACTERS = 3
TARGET_GLYPH_PX = 30
MAX_UPSCALE = 4
PAD = 3  # pixels added around a word's box (anti-aliased edges)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_ALNUM = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class TextBox:
    """A word found in the pixels: its box in image pixels (x, y = top-left column
    and row; width, height), what Tesseract read, its confidence (0-100; None when
    only the stroke screen saw it) and the region it was found in."""

    x: int
    y: int
    width: int
    height: int
    text: str = ""
    confidence: float | None = None
    region: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class PixelTextResult:
    boxes: list[TextBox] = field(default_factory=list)
    screened: list[str] = field(default_factory=list)  # regions that passed the stroke screen
    ocr: bool = True  # False: Tesseract was not available
    areas: list[TextBox] = field(default_factory=list)  # per region: all its text-like strokes

    def suggested_boxes(self) -> list[dict]:
        """Boxes to redact, as the review page draws them first: for each region with
        text, the box around all its text-like strokes (it covers lines OCR misread),
        and every word box outside it."""
        out = [a.as_dict() for a in self.areas]
        for b in self.boxes:
            inside = any(
                a.x <= b.x
                and a.y <= b.y
                and b.x + b.width <= a.x + a.width
                and b.y + b.height <= a.y + a.height
                for a in self.areas
            )
            if not inside:
                out.append(b.as_dict())
        return out

    @property
    def has_text(self) -> bool:
        return bool(self.boxes)

    @property
    def text(self) -> str:
        return " ".join(b.text for b in self.boxes if b.text)

    def reason(self) -> str | None:
        """Why the image is held back, or None (English; shown with the quarantine row)."""
        if not self.boxes:
            return None
        where = ", ".join(dict.fromkeys(b.region for b in self.boxes))
        if not self.ocr:
            return f"text-like strokes in the pixels ({where}); OCR not available"
        return f"burned-in text found by OCR ({where})"


@functools.cache
def ocr_available() -> bool:
    """True when the tesseract binary and both language packs are installed."""
    if shutil.which("tesseract") is None:
        return False
    try:
        import pytesseract

        langs = set(pytesseract.get_languages(config=""))
    except Exception:  # pytesseract missing or tesseract failing to start
        return False
    return {"eng", "chi_sim"} <= langs


def display_values(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    slope: float = 1.0,
    intercept: float = 0.0,
) -> np.ndarray:
    """One frame as float32 in display polarity (bright = white), 2-D."""
    values = np.asarray(stored)
    if values.ndim == 3:  # colour: text overlays are white or coloured, so the brightest channel
        values = values.max(axis=2)
    values = values.astype(np.float32) * float(slope or 1.0) + float(intercept or 0.0)
    if photometric.upper() == "MONOCHROME1":
        values = values.max() + values.min() - values
    return values


def regions(height: int, width: int) -> list[tuple[str, int, int, int, int]]:
    """(name, y0, y1, x0, x1) of the bands looked at: corners and borders."""
    band = max(8, height // 4)
    side = max(8, width // 4)
    out = [("top", 0, band, 0, width), ("bottom", max(0, height - band), height, 0, width)]
    if height - 2 * band >= 8:
        out += [
            ("left", band, height - band, 0, side),
            ("right", band, height - band, max(0, width - side), width),
        ]
    return out


def stroke_rows(region: np.ndarray, step: float) -> int:
    """Rows of ``region`` with at least MIN_STEPS_PER_ROW steps >= ``step``."""
    if region.shape[1] < 2:
        return 0
    edges = np.abs(np.diff(region, axis=1)) >= step
    return int((edges.sum(axis=1) >= MIN_STEPS_PER_ROW).sum())


def window_for_ocr(region: np.ndarray, top: float) -> tuple[np.ndarray, int]:
    """(uint8 image with dark text on white, upscale factor) for Tesseract."""
    median = float(np.median(region))
    low = median + 0.5 * (top - median)  # tissue falls to white, the overlay stays black
    if top <= low:
        low = float(region.min())
    span = max(top - low, 1e-6)
    scaled = np.clip((region - low) / span, 0.0, 1.0)
    img = (255.0 - scaled * 255.0).astype(np.uint8)
    factor = _upscale(region)
    if factor > 1:
        img = np.repeat(np.repeat(img, factor, axis=0), factor, axis=1)
    return np.pad(img, 10, constant_values=255), factor


def _upscale(region: np.ndarray) -> int:
    """Enlarge so the tallest run of bright rows (a text line) is ~TARGET_GLYPH_PX high."""
    top = float(region.max())
    bright = (region >= top - 0.25 * (top - float(np.median(region)))).any(axis=1)
    runs, run = [], 0
    for row in bright:
        run = run + 1 if row else 0
        if run:
            runs.append(run)
    line = max([r for r in runs if r >= 4] or [12])
    return int(min(MAX_UPSCALE, max(1, round(TARGET_GLYPH_PX / line))))


def _meaningful(text: str) -> int:
    return len(_ALNUM.findall(text)) + 2 * len(_CJK.findall(text))


def _counts(text: str, conf: float, min_confidence: float) -> bool:
    """A word counts when read with confidence (two letters or digits, or a Chinese
    character), or, at any confidence, when it looks like an identifier or a date
    (six or more letters and digits, at least three of them digits): blocky scanner
    fonts read with low confidence, and that is what they print."""
    if conf >= min_confidence and _meaningful(text) >= 2:
        return True
    return len(_ALNUM.findall(text)) >= 6 and len(re.findall(r"[0-9]", text)) >= 3


def _ocr_words(img: np.ndarray) -> list[tuple[str, float, int, int, int, int]]:
    import pytesseract
    from PIL import Image

    data = pytesseract.image_to_data(
        Image.fromarray(img),
        lang=LANGUAGES,
        config="--psm 11",
        output_type=pytesseract.Output.DICT,
    )
    out = []
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        conf = float(data["conf"][i])
        if not text or conf < 0:
            continue
        out.append(
            (
                text,
                conf,
                int(data["left"][i]),
                int(data["top"][i]),
                int(data["width"][i]),
                int(data["height"][i]),
            )
        )
    return out


def find_text(
    values: np.ndarray, *, use_ocr: bool | None = None, min_confidence: float = MIN_CONFIDENCE
) -> PixelTextResult:
    """Burned-in text in one frame (``display_values`` output, or any 2-D array in
    display polarity): the boxes of the words found, in image pixels."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or min(values.shape) < 16:
        return PixelTextResult()
    top = float(values.max())
    if not np.isfinite(top) or not np.isfinite(values.min()):
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        top = float(values.max())
    sample = values[:: max(1, values.shape[0] // 128), :: max(1, values.shape[1] // 128)]
    low = float(np.percentile(sample, 1))
    if top - low <= 0:
        return PixelTextResult()
    step = STEP_FRACTION * (top - low)
    ocr = ocr_available() if use_ocr is None else use_ocr
    result = PixelTextResult(ocr=ocr)
    h, w = values.shape
    for name, y0, y1, x0, x1 in regions(h, w):
        region = values[y0:y1, x0:x1]
        if stroke_rows(region, step) < MIN_TEXT_ROWS:
            continue
        result.screened.append(name)
        area = _stroke_box(region, step, x0, y0, name)
        if not ocr:
            result.boxes.append(area)
            result.areas.append(area)
            continue
        img, factor = window_for_ocr(region, top)
        try:
            read = _ocr_words(img)
        except Exception:  # noqa: BLE001 - Tesseract failed: held back as if unread
            result.boxes.append(area)
            result.areas.append(area)
            continue
        words = []
        for text, conf, left, top_px, width, height in read:
            if not _counts(text, conf, min_confidence):
                continue
            bx = x0 + (left - 10) // factor - PAD
            by = y0 + (top_px - 10) // factor - PAD
            bw = -(-width // factor) + 2 * PAD
            bh = -(-height // factor) + 2 * PAD
            bx, by = max(0, bx), max(0, by)
            words.append(
                TextBox(
                    bx,
                    by,
                    min(bw, w - bx),
                    min(bh, h - by),
                    text,
                    round(conf, 1),
                    name,
                )
            )
        if sum(_meaningful(b.text) for b in words) >= MIN_CHARACTERS:
            result.boxes.extend(words)
            result.areas.append(area)
    return result


def _stroke_box(region: np.ndarray, step: float, x0: int, y0: int, name: str) -> TextBox:
    """The box around the text-like rows and columns of a region (no OCR)."""
    edges = np.abs(np.diff(region, axis=1)) >= step
    rows = np.where(edges.sum(axis=1) >= MIN_STEPS_PER_ROW)[0]
    cols = np.where(edges[rows].any(axis=0))[0] if rows.size else np.array([], dtype=int)
    if not rows.size or not cols.size:
        return TextBox(x0, y0, region.shape[1], region.shape[0], region=name)
    ry0, ry1 = max(0, rows.min() - PAD), min(region.shape[0], rows.max() + 1 + PAD)
    rx0, rx1 = max(0, cols.min() - PAD), min(region.shape[1], cols.max() + 2 + PAD)
    return TextBox(int(x0 + rx0), int(y0 + ry0), int(rx1 - rx0), int(ry1 - ry0), region=name)


def find_text_in_dataset(ds, *, frames: int = 1, use_ocr: bool | None = None) -> PixelTextResult:
    """``find_text`` on the first ``frames`` frames of a pydicom dataset with pixel
    data; the boxes of every frame read are merged. Undecodable pixels give an empty
    result (the import's own checks refuse them). Nothing is cached on ``ds``."""
    from pydicom.pixels import pixel_array

    try:
        n = int(getattr(ds, "NumberOfFrames", 1) or 1)
        samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
        photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2") or "")
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):  # malformed header values: not ours to judge
        return PixelTextResult()
    merged = PixelTextResult(ocr=ocr_available() if use_ocr is None else use_ocr)
    for index in range(min(n, max(1, frames))):
        try:
            frame = pixel_array(ds, index=index if n > 1 else None)
        except Exception:  # noqa: BLE001 - undecodable: ingest's own checks say why
            return merged
        if (samples == 1 and frame.ndim != 2) or frame.ndim not in (2, 3):
            continue
        values = display_values(frame, photometric=photometric, slope=slope, intercept=intercept)
        found = find_text(values, use_ocr=merged.ocr)
        merged.screened.extend(r for r in found.screened if r not in merged.screened)
        merged.boxes.extend(b for b in found.boxes if b not in merged.boxes)
        merged.areas.extend(b for b in found.areas if b not in merged.areas)
    return merged
