"""Burned-in text indicator: many sharp, high-contrast strokes in an image corner."""

from __future__ import annotations

import numpy as np

from ..profile import Profile
from ..result import FAIL, NA, PASS, WARN, RuleResult, result
from ..series import SeriesInput


def text_score(img: np.ndarray, min_rows: int = 3) -> tuple[int, str]:
    """(rows with >= 4 strong edges, corner name) of the most text-like corner.

    A strong edge is a step between neighbouring pixels of at least 60 % of the image's
    range (1st percentile to maximum, either polarity): glyph strokes give several per
    row, anatomy, noise and single bright objects give at most two.
    """
    h, w = img.shape
    rng = float(img.max()) - float(img.min())
    if rng <= 0:
        return 0, ""
    step = 0.6 * rng
    ch, cw = max(8, int(0.25 * h)), max(8, int(0.45 * w))
    corners = {
        "top-left": img[:ch, :cw],
        "top-right": img[:ch, w - cw :],
        "bottom-left": img[h - ch :, :cw],
        "bottom-right": img[h - ch :, w - cw :],
    }
    best, where = 0, ""
    for name, c in corners.items():
        edges = np.abs(np.diff(c, axis=1)) >= step
        rows = int((edges.sum(axis=1) >= 4).sum())
        if rows > best:
            best, where = rows, name
    return best, where


def burned_in_text(series: SeriesInput, p: Profile) -> RuleResult:
    key = "burned_in_text"
    thr = f"< {p.text_min_rows} text-like rows in any corner"
    imgs = series.images()
    flag = any(str(getattr(ds, "BurnedInAnnotation", "")).upper() == "YES" for ds in series.headers)
    if not imgs:
        if flag:
            return result(
                key,
                WARN,
                None,
                thr,
                "Header says BurnedInAnnotation=YES (pixels not checked).",
                "头信息标明含有烧录注释 (未检查像素)。",
            )
        return result(key, NA, None, thr, "No decodable pixel data.", "无可解码的像素数据。")
    hits = []
    for i, im in enumerate(imgs):
        if im.ndim != 2 or min(im.shape) < 16:
            continue
        score, where = text_score(im.astype(np.float32, copy=False), p.text_min_rows)
        if score >= p.text_min_rows:
            hits.append((i, score, where))
    if hits:
        i, score, where = hits[0]
        return result(
            key,
            FAIL,
            len(hits),
            thr,
            f"Burned-in text suspected on {len(hits)} image(s), first #{i + 1} ({where}).",
            f"疑似烧录文字：{len(hits)} 幅图像，首幅为第 {i + 1} 幅 ({where})。",
        )
    if flag:
        return result(
            key,
            WARN,
            0,
            thr,
            "Header says BurnedInAnnotation=YES but no text was found in the corners.",
            "头信息标明含有烧录注释，但角落未检出文字。",
        )
    return result(key, PASS, 0, thr, "No burned-in text found.", "未发现烧录文字。")
