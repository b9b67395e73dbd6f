"""CT pixel rules (values in HU after RescaleSlope/Intercept)."""

from __future__ import annotations

import numpy as np

from ..profile import Profile
from ..result import FAIL, NA, PASS, WARN, RuleResult, result
from ..series import SeriesInput

MAX_SAMPLED = 24


def sample_images(series: SeriesInput, k: int = MAX_SAMPLED) -> list[np.ndarray]:
    """Up to ``k`` evenly spaced 2-D frames (at least 8x8), or [] when no pixels."""
    imgs = [im for im in (series.images() or []) if im.ndim == 2 and min(im.shape) >= 8]
    if len(imgs) <= k:
        return imgs
    idx = np.unique(np.linspace(0, len(imgs) - 1, k).round().astype(int))
    return [imgs[i] for i in idx]


def _no_pixels(key: str, thr: str) -> RuleResult:
    return result(key, NA, None, thr, "No decodable pixel data.", "无可解码的像素数据。")


def _frame(img: np.ndarray, frac: float = 0.05) -> np.ndarray:
    b = max(1, int(round(min(img.shape) * frac)))
    return np.concatenate(
        [img[:b].ravel(), img[-b:].ravel(), img[b:-b, :b].ravel(), img[b:-b, -b:].ravel()]
    )


def _tol_status(err: float, p: Profile) -> str:
    if err > p.hu_fail_tolerance:
        return FAIL
    return WARN if err > p.hu_warn_tolerance else PASS


def ct_hu_calibration(series: SeriesInput, p: Profile) -> RuleResult:
    """Air outside the body near -1000 HU (from the image border), soft tissue near +40."""
    key = "ct_hu_calibration"
    thr = (
        f"air {p.air_hu:g}, soft tissue {p.soft_tissue_hu:g} HU "
        f"(+/- {p.hu_warn_tolerance:g}, fail {p.hu_fail_tolerance:g})"
    )
    imgs = sample_images(series)
    if not imgs:
        return _no_pixels(key, thr)
    border = np.concatenate([_frame(im) for im in imgs])
    # padding outside the reconstruction circle is often -2000/-3024: ignore it
    # air only when most of the border is air-like; a body filling the image (lung at
    # about -850 HU on the edge) gives no air estimate rather than a wrong one
    airish = border[(border > p.air_hu - 150) & (border < p.air_hu + 400)]
    air = float(np.median(airish)) if airish.size >= 0.5 * border.size else None
    allv = np.concatenate([im[::2, ::2].ravel() for im in imgs])
    lo, hi = p.soft_tissue_hu - 100, p.soft_tissue_hu + 120
    soft = allv[(allv >= lo) & (allv <= hi)]
    tissue = None
    if soft.size >= 0.01 * allv.size and soft.size >= 50:
        hist, edges = np.histogram(soft, bins=np.arange(lo, hi + 5, 5.0))
        sm = np.convolve(hist, np.ones(5) / 5.0, mode="same")
        tissue = float(edges[int(sm.argmax())] + 2.5)
    if air is None and tissue is None:
        return result(
            key,
            NA,
            None,
            thr,
            "Neither air outside the body nor soft tissue found: HU not checked.",
            "未找到体外空气或软组织：未检查 CT 值。",
        )
    statuses, en, zh = [], [], []
    if air is not None:
        statuses.append(_tol_status(abs(air - p.air_hu), p))
        en.append(f"air {air:.0f} HU")
        zh.append(f"空气 {air:.0f} HU")
    if tissue is not None:
        statuses.append(_tol_status(abs(tissue - p.soft_tissue_hu), p))
        en.append(f"soft tissue {tissue:.0f} HU")
        zh.append(f"软组织 {tissue:.0f} HU")
    st = FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
    value = air if air is not None else tissue
    pre_en = "HU calibration off: " if st != PASS else "HU plausible: "
    pre_zh = "CT 值校准异常：" if st != PASS else "CT 值合理："
    return result(key, st, value, thr, pre_en + ", ".join(en) + ".", pre_zh + "，".join(zh) + "。")


def _pair_noise(imgs: list[np.ndarray], centre: float, half: float) -> tuple[float, int]:
    """Robust noise from horizontal neighbour differences inside [centre +/- half]."""
    diffs = []
    for im in imgs:
        a, b = im[:, :-1], im[:, 1:]
        mid = 0.5 * (a + b)
        m = np.abs(mid - centre) < half
        diffs.append((a - b)[m])
    d = np.concatenate(diffs) if diffs else np.zeros(0)
    if d.size < 200:
        return float("nan"), int(d.size)
    mad = float(np.median(np.abs(d - np.median(d))))
    return 1.4826 * mad / np.sqrt(2.0), int(d.size)


def ct_noise(series: SeriesInput, p: Profile) -> RuleResult:
    """Noise = robust std (MAD of neighbour differences / sqrt 2) in soft tissue, else air."""
    key = "ct_noise"
    thr = f"<= {p.max_noise_hu:g} HU (fail > {p.fail_noise_hu:g})"
    imgs = sample_images(series)
    if not imgs:
        return _no_pixels(key, thr)
    where, where_zh = "soft tissue", "软组织"
    noise, n = _pair_noise(imgs, p.soft_tissue_hu, 80.0)
    if n < 200:
        noise, n = _pair_noise(imgs, p.air_hu, 80.0)
        where, where_zh = "air", "空气"
    if n < 200:
        return result(
            key,
            NA,
            None,
            thr,
            "No homogeneous soft-tissue or air region found.",
            "未找到均匀的软组织或空气区域。",
        )
    st = FAIL if noise > p.fail_noise_hu else WARN if noise > p.max_noise_hu else PASS
    return result(
        key,
        st,
        noise,
        thr,
        f"Noise {noise:.1f} HU (std in {where}).",
        f"噪声 {noise:.1f} HU ({where_zh}区域标准差)。",
    )


def ct_truncated_fov(series: SeriesInput, p: Profile) -> RuleResult:
    """Fraction of the image edge covered by body (> -500 HU); high = body cut off."""
    key = "ct_truncated_fov"
    fail = p.fail_truncation_fraction
    thr = f"<= {p.max_truncation_fraction:.0%} of an edge" + (
        f" (fail > {fail:.0%})" if fail is not None else ""
    )
    imgs = sample_images(series)
    if not imgs:
        return _no_pixels(key, thr)
    worst_frac = 0.0
    for im in imgs:
        body = im > -500.0
        for edge in (body[0], body[-1], body[:, 0], body[:, -1]):
            worst_frac = max(worst_frac, float(edge.mean()))
    if fail is not None and worst_frac > fail:
        st = FAIL
    elif worst_frac > p.max_truncation_fraction:
        st = WARN
    else:
        st = PASS
    if st == PASS:
        return result(
            key, st, worst_frac, thr, "Body inside the field of view.", "身体完整位于视野内。"
        )
    return result(
        key,
        st,
        worst_frac,
        thr,
        f"Truncated field of view: body touches the image edge ({worst_frac:.0%} of an edge).",
        f"视野截断：身体触及图像边缘 (占边缘 {worst_frac:.0%})。",
    )


def _body_box(im: np.ndarray) -> np.ndarray:
    """Mask of the bounding box of soft-tissue rows and columns (excludes corner overlays)."""
    soft = (im > -200.0) & (im < 300.0)
    rows, cols = soft.sum(axis=1), soft.sum(axis=0)
    r = np.nonzero(rows > 0.05 * max(1, rows.max()))[0]
    c = np.nonzero(cols > 0.05 * max(1, cols.max()))[0]
    mask = np.zeros(im.shape, bool)
    if r.size and c.size:
        mask[r[0] : r[-1] + 1, c[0] : c[-1] + 1] = True
    return mask


def ct_metal(series: SeriesInput, p: Profile) -> RuleResult:
    """Metal/streak indicator: fraction of body voxels above ``metal_hu`` on the worst slice."""
    key = "ct_metal"
    thr = f"<= {p.max_metal_fraction:.2%} of voxels > {p.metal_hu:g} HU"
    imgs = series.images()
    if not imgs:
        return _no_pixels(key, thr)
    worst_frac, worst_i = 0.0, -1
    for i, im in enumerate(imgs):
        if im.ndim != 2 or not (im > p.metal_hu).any():
            continue
        box = _body_box(im)
        n = int(box.sum())
        if n == 0:
            continue
        frac = float((im[box] > p.metal_hu).sum()) / n
        if frac > worst_frac:
            worst_frac, worst_i = frac, i
    if worst_frac > p.fail_metal_fraction:
        st = FAIL
    elif worst_frac > p.max_metal_fraction:
        st = WARN
    else:
        return result(key, PASS, worst_frac, thr, "No metal detected.", "未发现金属。")
    return result(
        key,
        st,
        worst_frac,
        thr,
        f"Possible metal/streak artefact: {worst_frac:.2%} of voxels > {p.metal_hu:g} HU "
        f"on image #{worst_i + 1}.",
        f"可能存在金属/条纹伪影：第 {worst_i + 1} 幅图像 {worst_frac:.2%} 的体素 "
        f"> {p.metal_hu:g} HU。",
    )
