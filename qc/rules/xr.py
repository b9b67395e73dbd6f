"""Radiograph (CR/DX) pixel rules on display values: 0 = black, 1 = white (dense)."""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from ..profile import Profile
from ..result import FAIL, NA, PASS, WARN, RuleResult, result
from ..series import SeriesInput, _f


def _first(v: object) -> object:
    if isinstance(v, (str, bytes)):
        return v
    try:
        return v[0]  # type: ignore[index]
    except (TypeError, IndexError, KeyError):
        return v


def display_image(ds: Dataset, img: np.ndarray) -> np.ndarray:
    """Rescaled pixels -> display values in [0, 1]: VOI window/LUT, MONOCHROME1 inverted."""
    a = img.astype(np.float32)
    lo = hi = None
    wc, ww = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if wc is not None and ww is not None:
        c, w = _f(_first(wc)), _f(_first(ww))
        if c is not None and w is not None and w > 1:
            lo, hi = c - w / 2.0, c + w / 2.0
    if lo is None:
        seq = getattr(ds, "VOILUTSequence", None)
        if seq:
            try:
                from pydicom.pixels import apply_voi_lut

                a = np.asarray(apply_voi_lut(a, ds), dtype=np.float32)
            except Exception:
                pass
    if lo is None:
        bits = int(getattr(ds, "BitsStored", 0) or 0)
        signed = int(getattr(ds, "PixelRepresentation", 0) or 0) == 1
        if 1 <= bits <= 16 and not signed and "VOILUTSequence" not in ds:
            lo, hi = 0.0, float(2**bits - 1)
        else:
            lo, hi = float(np.percentile(a, 0.1)), float(np.percentile(a, 99.9))
    if hi is None or hi <= lo:
        hi = lo + 1.0
    out = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 1.0 - out
    return out


def _display(series: SeriesInput) -> np.ndarray | None:
    if "display" not in series._cache:
        imgs = series.images()
        img = imgs[0] if imgs else None
        series._cache["display"] = (
            display_image(series.headers[0], img)
            if img is not None and img.ndim == 2 and min(img.shape) >= 16
            else None
        )
    return series._cache["display"]


def exposed_field(d: np.ndarray, white: float = 0.98, frac: float = 0.8) -> np.ndarray:
    """``d`` without collimator shutters: edge rows/columns that are mostly saturated white
    (unexposed) are cropped away, so they count neither as clipping nor as foreign objects."""
    w = d >= white
    cols, rows = w.mean(axis=0) < frac, w.mean(axis=1) < frac
    if not cols.any() or not rows.any():
        return d
    c, r = np.nonzero(cols)[0], np.nonzero(rows)[0]
    out = d[r[0] : r[-1] + 1, c[0] : c[-1] + 1]
    return out if min(out.shape) >= 16 else d


def _field(series: SeriesInput) -> np.ndarray | None:
    if "field" not in series._cache:
        d = _display(series)
        series._cache["field"] = None if d is None else exposed_field(d)
    return series._cache["field"]


def _no_pixels(key: str, thr: str) -> RuleResult:
    return result(key, NA, None, thr, "No decodable pixel data.", "无可解码的像素数据。")


def _clip_status(frac: float, p: Profile) -> str:
    if frac > 2 * p.max_clipped_fraction:
        return FAIL
    return WARN if frac > p.max_clipped_fraction else PASS


def _exposure(
    key: str, thr: str, mean: float, status: str, problem_en: str, problem_zh: str
) -> RuleResult:
    if status == PASS:
        return result(
            key,
            status,
            mean,
            thr,
            f"Exposure OK (mean {mean:.2f}).",
            f"曝光正常 (均值 {mean:.2f})。",
        )
    return result(key, status, mean, thr, problem_en, problem_zh)


def xr_overexposure(series: SeriesInput, p: Profile) -> RuleResult:
    """Too dark: low mean display value and/or clipped black areas."""
    key = "xr_overexposure"
    thr = f"mean >= {p.min_mean_display:g}, black clipped <= {p.max_clipped_fraction:.0%}"
    d = _field(series)
    if d is None:
        return _no_pixels(key, thr)
    mean, black = float(d.mean()), float((d <= 0.002).mean())
    st = _clip_status(black, p)
    if mean < p.min_mean_display:
        st = FAIL if mean < 0.75 * p.min_mean_display else (WARN if st == PASS else st)
    return _exposure(
        key,
        thr,
        mean,
        st,
        f"Over-exposed: image too dark (mean {mean:.2f}, {black:.1%} clipped black).",
        f"曝光过度：图像过暗 (均值 {mean:.2f}，{black:.1%} 像素截断为黑)。",
    )


def xr_underexposure(series: SeriesInput, p: Profile) -> RuleResult:
    """Washed out: high mean display value, no dark areas, and/or clipped white areas."""
    key = "xr_underexposure"
    thr = f"mean <= {p.max_mean_display:g}, white clipped <= {p.max_clipped_fraction:.0%}"
    d = _field(series)
    if d is None:
        return _no_pixels(key, thr)
    mean, white = float(d.mean()), float((d >= 0.998).mean())
    st = _clip_status(white, p)
    if mean > p.max_mean_display:
        hard = 1.0 - 0.75 * (1.0 - p.max_mean_display)
        st = FAIL if mean > hard else (WARN if st == PASS else st)
    return _exposure(
        key,
        thr,
        mean,
        st,
        f"Under-exposed: image washed out (mean {mean:.2f}, {white:.1%} clipped white).",
        f"曝光不足：图像发白 (均值 {mean:.2f}，{white:.1%} 像素截断为白)。",
    )


def xr_dynamic_range(series: SeriesInput, p: Profile) -> RuleResult:
    key = "xr_dynamic_range"
    thr = f"p99 - p1 >= {p.min_dynamic_range:g}"
    d = _field(series)
    if d is None:
        return _no_pixels(key, thr)
    p1, p99 = np.percentile(d[::2, ::2], [1, 99])
    rng = float(p99 - p1)
    if rng >= p.min_dynamic_range:
        return result(key, PASS, rng, thr, f"Dynamic range {rng:.2f}.", f"动态范围 {rng:.2f}。")
    st = FAIL if rng < 0.5 * p.min_dynamic_range else WARN
    return result(
        key,
        st,
        rng,
        thr,
        f"Low dynamic range: {rng:.2f} of the display range used.",
        f"动态范围过低：仅使用了显示范围的 {rng:.2f}。",
    )


def xr_symmetry(series: SeriesInput, p: Profile) -> RuleResult:
    """Collimation/rotation indicator: left vs right lung-field mean intensity."""
    key = "xr_symmetry"
    thr = f"|left - right| / mean <= {p.max_asymmetry:g}"
    d = _display(series)
    if d is None:
        return _no_pixels(key, thr)
    h, w = d.shape
    r0, r1 = int(0.25 * h), int(0.70 * h)
    left = float(d[r0:r1, int(0.15 * w) : int(0.42 * w)].mean())
    right = float(d[r0:r1, int(0.58 * w) : int(0.85 * w)].mean())
    mean = 0.5 * (left + right)
    if mean <= 1e-6:
        return result(key, NA, None, thr, "Lung fields are empty.", "肺野区域为空。")
    asym = abs(left - right) / mean
    if asym <= p.max_asymmetry:
        return result(
            key,
            PASS,
            asym,
            thr,
            f"Lung fields symmetric ({asym:.2f}).",
            f"两侧肺野对称 ({asym:.2f})。",
        )
    st = FAIL if asym > 2 * p.max_asymmetry else WARN
    return result(
        key,
        st,
        asym,
        thr,
        f"Left/right lung fields differ by {asym:.0%}: check rotation or collimation.",
        f"左右肺野亮度相差 {asym:.0%}：请检查体位旋转或准直。",
    )


def xr_foreign_object(series: SeriesInput, p: Profile) -> RuleResult:
    """Large saturated (white) area in the central field: foreign object indicator."""
    key = "xr_foreign_object"
    thr = f"saturated central area <= {p.max_foreign_fraction:.1%}"
    d = _field(series)
    if d is None:
        return _no_pixels(key, thr)
    h, w = d.shape
    centre = d[int(0.2 * h) : int(0.8 * h), int(0.2 * w) : int(0.8 * w)]
    frac = float((centre >= 0.98).mean())
    if frac <= p.max_foreign_fraction:
        return result(key, PASS, frac, thr, "No large foreign object.", "未见大块异物。")
    st = FAIL if frac > 10 * p.max_foreign_fraction else WARN
    return result(
        key,
        st,
        frac,
        thr,
        f"Possible foreign object: {frac:.1%} of the central field is saturated white.",
        f"可能存在异物：中央视野 {frac:.1%} 的像素饱和为白。",
    )
