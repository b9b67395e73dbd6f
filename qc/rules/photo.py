"""Colour fundus photograph rules (Ophthalmic Photography ``OP``, VL Photographic ``XC``).

Every rule works on the 8-bit RGB pixels (``photo_rgb``) and, where it matters, only
inside the circular field of view (FOV) that a fundus camera leaves between its dark
surround and the retina (``field_of_view``):

- ``photo_focus``: sharpness = 99th percentile of the absolute Laplacian of Gaussian
  (sigma 1 px) of the green channel (the best-contrast channel of a fundus: vessels,
  lesions) inside the FOV shrunk to 90 % of its radius, after resampling the FOV to
  512 px across (so the number does not depend on the camera's resolution), as a
  percentage of the mean green (so it does not depend on exposure). The variance of
  the Laplacian, tried first, grows with the amount of detail: a grade-4 fundus blurred
  at level 1 scored as high as a clean grade-0 one. The 99th percentile follows the
  sharpest edges (vessel walls), which every fundus has. A field under 512 px across
  is upsampled and reads softer (a 512 px fixture scores about 15): such an image also
  fails ``photo_size``.
- ``photo_overexposure``: fraction of FOV pixels with a channel at >= 250 (clipped
  highlights) and the FOV's mean luma (BT.601, 0-255).
- ``photo_underexposure``: fraction of FOV pixels darker than luma 20 and the mean luma.
- ``photo_field_of_view``: the FOV is found (largest bright region of the smoothed red
  channel, a circle fitted to its edge away from the image border), is round (IoU with
  the fitted circle), its centre is near the image centre, its diameter is a large part
  of the image's short side, and most of the circle lies inside the frame.
- ``photo_size``: the image's short side in pixels.
- ``photo_colour``: three channels that differ (mean max-min channel spread inside the
  FOV), red brighter than blue (a fundus is red; blue > red means swapped channels).

The default thresholds (``Profile.default_for("OP")``) were chosen from the metrics of
the synthetic fixtures at every defect level, printed by::

    .venv/bin/python -m tests.qc.photo_measure --seeds 0 1 2 3 4

(see that module for the table and ``Profile`` for the reasons of each number).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from ..profile import Profile
from ..result import FAIL, NA, PASS, WARN, RuleResult, result
from ..series import SeriesInput

WORK_SIDE = 512  # the FOV is resampled to this many pixels across for the focus metric
FOV_MIN_LEVEL = 10.0  # red (0-255) below this is surround, whatever the exposure
FOV_RELATIVE_LEVEL = 0.15  # ... and below 15 % of the red channel's 99th percentile
FOV_MIN_AREA = 0.05  # a region under 5 % of the frame is not a field of view
HIGHLIGHT = 250  # a channel at or above this is clipped
DARK_LUMA = 20.0  # luma below this shows no detail


def photo_rgb(series: SeriesInput) -> np.ndarray | None:
    """The first frame's pixels as uint8: rows x cols x 3 (colour) or rows x cols (grey).

    Cached per series; read from the dataset when it holds pixel data, otherwise from
    the series' source file. None when there is nothing to decode.
    """
    if "photo_rgb" in series._cache:
        return series._cache["photo_rgb"]
    arr = None
    if series.headers:
        ds = series.headers[0]
        try:
            if "PixelData" not in ds and series.source and os.path.isfile(series.source):
                import pydicom

                ds = pydicom.dcmread(series.source)
            if "PixelData" in ds:
                arr = _first_frame(ds)
        except Exception as exc:  # undecodable: the pixel rules say n/a
            series.notes.append(f"pixel data not decodable: {exc.__class__.__name__}: {exc}")
            arr = None
    series._cache["photo_rgb"] = arr
    return arr


def _first_frame(ds) -> np.ndarray:
    a = np.asarray(ds.pixel_array)  # pydicom converts YBR_* to RGB
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frames > 1:
        a = a[0]
    if spp == 1 and a.ndim == 3:
        a = a[0]
    if a.dtype != np.uint8:
        bits = int(getattr(ds, "BitsStored", 8) or 8)
        a = np.clip(a.astype(np.float32) * (255.0 / (2**bits - 1)), 0, 255).astype(np.uint8)
    return a


def photo_series(rgb: np.ndarray, modality: str = "OP", source: str = "") -> SeriesInput:
    """Wrap a decoded photograph (no DICOM yet) as a one-image series for the rules."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Modality = modality
    ds.Rows, ds.Columns = int(rgb.shape[0]), int(rgb.shape[1])
    ds.SamplesPerPixel = 3 if rgb.ndim == 3 else 1
    ds.PhotometricInterpretation = "RGB" if rgb.ndim == 3 else "MONOCHROME2"
    grey = rgb.astype(np.float32).mean(axis=-1) if rgb.ndim == 3 else rgb.astype(np.float32)
    s = SeriesInput(headers=[ds], pixels=lambda: [grey], source=source)
    s._cache["photo_rgb"] = rgb
    return s


@dataclass(frozen=True)
class FieldOfView:
    found: bool
    mask: np.ndarray | None = None  # full-resolution bool mask of the FOV
    centre: tuple[float, float] = (0.0, 0.0)  # fitted circle (x, y) px
    radius: float = 0.0  # fitted circle, px
    roundness: float = 0.0  # IoU of the region with the fitted circle (in the frame)
    inside: float = 0.0  # fraction of the circle's area inside the frame

    def offset(self, shape: tuple[int, ...]) -> float:
        """Centre distance from the image centre / the image's short side."""
        h, w = shape[:2]
        return float(np.hypot(self.centre[0] - (w - 1) / 2, self.centre[1] - (h - 1) / 2)) / min(
            h, w
        )

    def diameter_fraction(self, shape: tuple[int, ...]) -> float:
        return 2.0 * self.radius / min(shape[:2])


def _fit_circle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float, float]:
    """Algebraic (Kasa) least-squares circle through the points: (cx, cy, r)."""
    a = np.stack([xs, ys, np.ones_like(xs)], axis=1)
    b = xs**2 + ys**2
    (c0, c1, c2), *_ = np.linalg.lstsq(a, b, rcond=None)
    cx, cy = c0 / 2.0, c1 / 2.0
    return float(cx), float(cy), float(np.sqrt(max(c2 + cx**2 + cy**2, 0.0)))


def field_of_view(img: np.ndarray) -> FieldOfView:
    """Find the circular field of view of a fundus photograph (RGB or grey uint8)."""
    red = img[..., 0] if img.ndim == 3 else img
    h, w = red.shape
    step = max(1, max(h, w) // 512)
    small = red[::step, ::step].astype(np.float32)
    smooth = ndimage.uniform_filter(small, 5)
    level = max(FOV_MIN_LEVEL, FOV_RELATIVE_LEVEL * float(np.percentile(smooth, 99)))
    labels, n = ndimage.label(smooth > level)
    if n == 0:
        return FieldOfView(False)
    sizes = ndimage.sum_labels(np.ones_like(smooth), labels, index=np.arange(1, n + 1))
    region = labels == (1 + int(np.argmax(sizes)))
    region = ndimage.binary_fill_holes(region)
    if region.mean() < FOV_MIN_AREA:
        return FieldOfView(False)
    edge = region & ~ndimage.binary_erosion(region)
    sh, sw = region.shape
    edge[:2, :] = edge[-2:, :] = False
    edge[:, :2] = edge[:, -2:] = False
    ys, xs = np.nonzero(edge)
    if len(xs) < 20:
        return FieldOfView(False, None, (w / 2, h / 2), 0.0, 0.0, 0.0)
    cx, cy, r = _fit_circle(xs.astype(np.float64), ys.astype(np.float64))
    yy, xx = np.mgrid[0:sh, 0:sw]
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= r**2
    inter, union = float((disc & region).sum()), float((disc | region).sum())
    roundness = inter / union if union else 0.0
    inside = float(disc.sum()) / (np.pi * r**2) if r > 0 else 0.0
    mask = np.repeat(np.repeat(region, step, axis=0), step, axis=1)[:h, :w]
    if mask.shape != (h, w):
        mask = np.pad(mask, ((0, h - mask.shape[0]), (0, w - mask.shape[1])), mode="edge")
    return FieldOfView(
        True,
        mask,
        (cx * step + (step - 1) / 2, cy * step + (step - 1) / 2),
        r * step,
        roundness,
        min(1.0, inside),
    )


def _fov(series: SeriesInput) -> FieldOfView | None:
    if "photo_fov" not in series._cache:
        img = photo_rgb(series)
        series._cache["photo_fov"] = None if img is None else field_of_view(img)
    return series._cache["photo_fov"]


def _inside(img: np.ndarray, fov: FieldOfView | None) -> np.ndarray:
    """Pixels (n x channels) inside the FOV, or of the whole image when none was found."""
    pix = img.reshape(img.shape[0], img.shape[1], -1)
    if fov is None or not fov.found or fov.mask is None or not fov.mask.any():
        return pix.reshape(-1, pix.shape[2])
    return pix[fov.mask]


def _luma(pix: np.ndarray) -> np.ndarray:
    p = pix.astype(np.float32)
    if p.shape[1] < 3:
        return p[:, 0]
    return 0.299 * p[:, 0] + 0.587 * p[:, 1] + 0.114 * p[:, 2]


def sharpness(img: np.ndarray, fov: FieldOfView | None) -> float:
    """99th percentile of |LoG| of the green channel inside the FOV, % of the mean green."""
    green = (img[..., 1] if img.ndim == 3 else img).astype(np.float32)
    h, w = green.shape
    if fov is not None and fov.found and fov.radius > 8:
        cx, cy, r = fov.centre[0], fov.centre[1], fov.radius
    else:
        cx, cy, r = (w - 1) / 2, (h - 1) / 2, min(h, w) / 2
    box = (
        max(0, int(cx - r)),
        max(0, int(cy - r)),
        min(w, int(np.ceil(cx + r)) + 1),
        min(h, int(np.ceil(cy + r)) + 1),
    )
    k = WORK_SIDE / (2.0 * r)
    crop = Image.fromarray(green[box[1] : box[3], box[0] : box[2]], "F")
    size = (max(8, round(crop.width * k)), max(8, round(crop.height * k)))
    work = np.asarray(crop.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    yy, xx = np.mgrid[0 : work.shape[0], 0 : work.shape[1]]
    wcx, wcy, wr = (cx - box[0]) * k, (cy - box[1]) * k, 0.9 * r * k
    inner = (xx - wcx) ** 2 + (yy - wcy) ** 2 <= wr**2
    if inner.sum() < 100:
        return 0.0
    mean = float(work[inner].mean())
    if mean <= 1.0:
        return 0.0
    log = np.abs(ndimage.gaussian_laplace(work, 1.0))[inner]
    return float(np.percentile(log, 99)) / mean * 100.0


def photo_metrics(img: np.ndarray) -> dict[str, float | bool | None]:
    """Every number the photo rules look at, for one decoded photograph."""
    fov = field_of_view(img)
    pix = _inside(img, fov)
    luma = _luma(pix)
    out: dict[str, float | bool | None] = {
        "fov_found": fov.found,
        "fov_diameter_fraction": fov.diameter_fraction(img.shape) if fov.found else None,
        "fov_offset": fov.offset(img.shape) if fov.found else None,
        "fov_roundness": fov.roundness if fov.found else None,
        "fov_inside": fov.inside if fov.found else None,
        "sharpness": sharpness(img, fov),
        "mean_luma": float(luma.mean()),
        "clipped_fraction": float((pix >= HIGHLIGHT).any(axis=1).mean()),
        "dark_fraction": float((luma < DARK_LUMA).mean()),
        "short_side_px": float(min(img.shape[:2])),
        "channels": float(img.shape[2] if img.ndim == 3 else 1),
    }
    out.update(_colour_numbers(img, pix))
    return out


def _colour_numbers(img: np.ndarray, pix: np.ndarray) -> dict[str, float]:
    if img.ndim != 3 or img.shape[2] < 3:
        return {"colour_spread": 0.0, "red_minus_blue": 0.0}
    p = pix[:, :3].astype(np.int16)
    spread = float((p.max(axis=1) - p.min(axis=1)).mean())
    return {"colour_spread": spread, "red_minus_blue": float(p[:, 0].mean() - p[:, 2].mean())}


def _no_pixels(key: str, thr: str) -> RuleResult:
    return result(key, NA, None, thr, "No decodable pixel data.", "无可解码的像素数据。")


def _where(fov: FieldOfView | None) -> tuple[str, str]:
    if fov is not None and fov.found:
        return "", ""
    return " (whole image: no field of view found)", " (全图：未检出视野)"


def _graded(
    key: str, st: str, value, thr: str, ok: tuple[str, str], bad: tuple[str, str]
) -> RuleResult:
    """One result whose message pair is `ok` when it passed and `bad` otherwise."""
    en, zh = ok if st == PASS else bad
    return result(key, st, value, thr, en, zh)


def photo_focus(series: SeriesInput, p: Profile) -> RuleResult:
    """Out-of-focus photograph: low normalised LoG variance of the green channel."""
    key = "photo_focus"
    thr = f"sharpness >= {p.photo_min_sharpness:g} (fail < {p.photo_fail_sharpness:g})"
    img = photo_rgb(series)
    if img is None:
        return _no_pixels(key, thr)
    fov = _fov(series)
    s = sharpness(img, fov)
    en, zh = _where(fov)
    st = PASS
    if s < p.photo_min_sharpness:
        st = FAIL if s < p.photo_fail_sharpness else WARN
    return _graded(
        key,
        st,
        s,
        thr,
        (f"In focus (sharpness {s:.1f}){en}.", f"对焦良好 (清晰度 {s:.1f}){zh}。"),
        (
            f"Blurred photograph: sharpness {s:.1f} below {p.photo_min_sharpness:g}{en}.",
            f"图像模糊：清晰度 {s:.1f} 低于 {p.photo_min_sharpness:g}{zh}。",
        ),
    )


def photo_overexposure(series: SeriesInput, p: Profile) -> RuleResult:
    """Too bright: clipped highlights inside the FOV and/or a high mean luma."""
    key = "photo_overexposure"
    thr = f"clipped <= {p.photo_max_clipped_fraction:.0%}, mean luma <= {p.photo_max_mean_luma:g}"
    img = photo_rgb(series)
    if img is None:
        return _no_pixels(key, thr)
    fov = _fov(series)
    pix = _inside(img, fov)
    clipped = float((pix >= HIGHLIGHT).any(axis=1).mean())
    mean = float(_luma(pix).mean())
    st = PASS
    if clipped > p.photo_max_clipped_fraction or mean > p.photo_max_mean_luma:
        st = WARN
    if clipped > 2 * p.photo_max_clipped_fraction or mean > 1.25 * p.photo_max_mean_luma:
        st = FAIL
    en, zh = _where(fov)
    return _graded(
        key,
        st,
        clipped,
        thr,
        (
            f"No over-exposure ({clipped:.1%} clipped, mean luma {mean:.0f}){en}.",
            f"无过曝 ({clipped:.1%} 像素截断，平均亮度 {mean:.0f}){zh}。",
        ),
        (
            f"Over-exposed: {clipped:.1%} of the field clipped, mean luma {mean:.0f}{en}.",
            f"曝光过度：视野内 {clipped:.1%} 像素截断，平均亮度 {mean:.0f}{zh}。",
        ),
    )


def photo_underexposure(series: SeriesInput, p: Profile) -> RuleResult:
    """Too dark: low mean luma and/or much of the FOV without detail."""
    key = "photo_underexposure"
    thr = f"mean luma >= {p.photo_min_mean_luma:g}, dark <= {p.photo_max_dark_fraction:.0%}"
    img = photo_rgb(series)
    if img is None:
        return _no_pixels(key, thr)
    fov = _fov(series)
    luma = _luma(_inside(img, fov))
    mean, dark = float(luma.mean()), float((luma < DARK_LUMA).mean())
    st = PASS
    if mean < p.photo_min_mean_luma or dark > p.photo_max_dark_fraction:
        st = WARN
    if mean < 0.6 * p.photo_min_mean_luma or dark > 2 * p.photo_max_dark_fraction:
        st = FAIL
    en, zh = _where(fov)
    return _graded(
        key,
        st,
        mean,
        thr,
        (
            f"Exposure OK (mean luma {mean:.0f}, {dark:.1%} dark){en}.",
            f"曝光正常 (平均亮度 {mean:.0f}，{dark:.1%} 过暗){zh}。",
        ),
        (
            f"Under-exposed: mean luma {mean:.0f}, {dark:.1%} of the field too dark{en}.",
            f"曝光不足：平均亮度 {mean:.0f}，视野内 {dark:.1%} 过暗{zh}。",
        ),
    )


def photo_field_of_view(series: SeriesInput, p: Profile) -> RuleResult:
    """The circular fundus field is present, round, centred, large and inside the frame."""
    key = "photo_field_of_view"
    thr = (
        f"round >= {p.photo_min_fov_roundness:g}, diameter >= {p.photo_min_fov_diameter:g} "
        f"of the short side, centre offset <= {p.photo_max_fov_offset:g}, "
        f"inside >= {p.photo_min_fov_inside:g}"
    )
    img = photo_rgb(series)
    if img is None:
        return _no_pixels(key, thr)
    fov = _fov(series)
    if fov is None or not fov.found:
        return result(
            key,
            FAIL,
            None,
            thr,
            "No fundus field of view found (dark or empty frame).",
            "未检出眼底视野 (画面过暗或为空)。",
        )
    if fov.roundness < p.photo_min_fov_roundness:
        return result(
            key,
            FAIL,
            fov.roundness,
            thr,
            f"No circular field of view (roundness {fov.roundness:.2f}): not a fundus "
            "photograph, or cropped to the retina.",
            f"未见圆形视野 (圆度 {fov.roundness:.2f})：非眼底照片或已裁剪。",
        )
    diam, off, inside = fov.diameter_fraction(img.shape), fov.offset(img.shape), fov.inside
    problems: list[tuple[str, str, str]] = []
    if off > p.photo_max_fov_offset:
        st = FAIL if off > 2 * p.photo_max_fov_offset else WARN
        problems.append((st, f"off-centre by {off:.0%} of the image", f"视野偏心 {off:.0%}"))
    if inside < p.photo_min_fov_inside:
        st = FAIL if inside < p.photo_min_fov_inside - 0.1 else WARN
        problems.append(
            (
                st,
                f"only {inside:.0%} of the field inside the frame",
                f"仅 {inside:.0%} 视野在画面内",
            )
        )
    if diam < p.photo_min_fov_diameter:
        st = FAIL if diam < 0.75 * p.photo_min_fov_diameter else WARN
        problems.append(
            (st, f"field only {diam:.0%} of the short side", f"视野直径仅为短边的 {diam:.0%}")
        )
    if not problems:
        return result(
            key,
            PASS,
            off,
            thr,
            f"Field of view centred (offset {off:.1%}, diameter {diam:.0%}).",
            f"视野居中 (偏移 {off:.1%}，直径 {diam:.0%})。",
        )
    st = FAIL if any(s == FAIL for s, _, _ in problems) else WARN
    return result(
        key,
        st,
        off,
        thr,
        "Field of view: " + "; ".join(e for _, e, _ in problems) + ".",
        "视野：" + "；".join(z for _, _, z in problems) + "。",
    )


def photo_size(series: SeriesInput, p: Profile) -> RuleResult:
    """Too few pixels to see microaneurysms: the short side (Rows/Columns, else pixels)."""
    key = "photo_size"
    thr = f"short side >= {p.photo_min_side_px} px (fail < {p.photo_fail_side_px} px)"
    ds = series.headers[0] if series.headers else None
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    if not rows or not cols:
        img = photo_rgb(series)
        if img is None:
            return _no_pixels(key, thr)
        rows, cols = img.shape[:2]
    side = min(rows, cols)
    st = PASS
    if side < p.photo_min_side_px:
        st = FAIL if side < p.photo_fail_side_px else WARN
    return _graded(
        key,
        st,
        side,
        thr,
        (f"{cols} x {rows} px.", f"{cols} x {rows} 像素。"),
        (
            f"Image too small: {cols} x {rows} px (short side under {p.photo_min_side_px}).",
            f"图像过小：{cols} x {rows} 像素 (短边不足 {p.photo_min_side_px})。",
        ),
    )


def photo_colour(series: SeriesInput, p: Profile) -> RuleResult:
    """A colour fundus photograph: three channels that differ, red brighter than blue."""
    key = "photo_colour"
    thr = f"RGB, channel spread >= {p.photo_min_colour_spread:g}"
    img = photo_rgb(series)
    if img is None:
        return _no_pixels(key, thr)
    if img.ndim != 3 or img.shape[2] < 3:
        return result(
            key,
            FAIL,
            0.0,
            thr,
            "Greyscale image (one channel): not a colour fundus photograph.",
            "灰度图像 (单通道)：非彩色眼底照片。",
        )
    nums = _colour_numbers(img, _inside(img, _fov(series)))
    spread = nums["colour_spread"]
    if spread < p.photo_min_colour_spread:
        return result(
            key,
            FAIL,
            spread,
            thr,
            f"Colour lost: the three channels are (nearly) equal (spread {spread:.1f}).",
            f"色彩缺失：三个通道 (几乎) 相同 (差值 {spread:.1f})。",
        )
    if nums["red_minus_blue"] < 0:
        return result(
            key,
            WARN,
            spread,
            thr,
            "Blue brighter than red: colour channels may be swapped (BGR).",
            "蓝色通道亮于红色：颜色通道可能颠倒 (BGR)。",
        )
    return result(
        key,
        PASS,
        spread,
        thr,
        f"Colour image (spread {spread:.0f}).",
        f"彩色图像 (差值 {spread:.0f})。",
    )
