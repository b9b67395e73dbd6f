"""Header rules: plain checks over the series' DICOM attributes and geometry."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..profile import Profile
from ..result import FAIL, NA, PASS, WARN, RuleResult, result
from ..series import Frame, SeriesInput, _f, slice_normal

_BODY_SYNONYMS = {
    "CHEST": {"CHEST", "THORAX", "LUNG", "LUNGS", "胸部", "CHEST_TO_ABDOMEN", "CHESTABDOMEN"},
}


def _attr(series: SeriesInput, name: str) -> str:
    for ds in series.headers:
        v = getattr(ds, name, None)
        if v not in (None, ""):
            return str(v).strip()
    return ""


def modality_match(series: SeriesInput, p: Profile) -> RuleResult:
    key = "modality_match"
    mod = series.modality
    want = ", ".join(p.modalities) or "any"
    if not p.modalities:
        return result(key, NA, mod or None, "any", "No modality required.", "未规定模态。")
    if not mod:
        return result(key, FAIL, None, want, "Modality is not recorded.", "未记录模态 (Modality)。")
    if mod not in p.modalities:
        return result(
            key,
            FAIL,
            mod,
            want,
            f"Modality {mod} is not one of {want}.",
            f"模态 {mod} 不在要求范围 ({want}) 内。",
        )
    return result(key, PASS, mod, want, f"Modality {mod} matches.", f"模态 {mod} 符合要求。")


def body_part_match(series: SeriesInput, p: Profile) -> RuleResult:
    key = "body_part_match"
    if not p.body_part:
        return result(key, NA, None, "any", "No body part required.", "未规定检查部位。")
    want = p.body_part.upper()
    allowed = _BODY_SYNONYMS.get(want, {want}) | {v.upper() for v in p.body_part_synonyms}
    part = _attr(series, "BodyPartExamined").upper()
    if not part:
        # fall back on the anatomic region code meaning (DX)
        for ds in series.headers[:1]:
            seq = getattr(ds, "AnatomicRegionSequence", None)
            if seq:
                part = str(getattr(seq[0], "CodeMeaning", "")).upper()
    if not part:
        return result(
            key,
            WARN,
            None,
            want,
            "Body part examined is not recorded.",
            "未记录检查部位 (BodyPartExamined)。",
        )
    if part not in allowed:
        return result(
            key,
            FAIL,
            part,
            want,
            f"Body part {part} does not match {want}.",
            f"检查部位 {part} 与要求的 {want} 不符。",
        )
    return result(key, PASS, part, want, f"Body part {part} matches.", f"检查部位 {part} 符合。")


def slice_thickness(series: SeriesInput, p: Profile) -> RuleResult:
    key = "slice_thickness"
    thr = f"<= {p.max_slice_thickness_mm:g} mm (fail > {p.fail_slice_thickness_mm:g} mm)"
    vals = [f.thickness for f in series.frames() if f.thickness is not None]
    if not vals:
        return result(
            key,
            WARN,
            None,
            thr,
            "Slice thickness is not recorded.",
            "未记录层厚 (SliceThickness)。",
        )
    t = float(max(vals))
    if t <= 0:
        return result(
            key,
            WARN,
            t,
            thr,
            f"Slice thickness {t:g} mm is not plausible.",
            f"层厚 {t:g} mm 不合理。",
        )
    if t > p.fail_slice_thickness_mm:
        st = FAIL
    elif t > p.max_slice_thickness_mm:
        st = WARN
    else:
        st = PASS
    if st == PASS:
        return result(key, st, t, thr, f"Slice thickness {t:g} mm.", f"层厚 {t:g} mm。")
    return result(
        key,
        st,
        t,
        thr,
        f"Slice thickness {t:g} mm exceeds {p.max_slice_thickness_mm:g} mm.",
        f"层厚 {t:g} mm 超过 {p.max_slice_thickness_mm:g} mm。",
    )


def pixel_spacing(series: SeriesInput, p: Profile) -> RuleResult:
    key = "pixel_spacing"
    lo, hi = p.pixel_spacing_min_mm, p.pixel_spacing_max_mm
    thr = f"{lo:g}-{hi:g} mm"
    ds = series.headers[0]
    raw = None
    for name in ("PixelSpacing", "ImagerPixelSpacing"):
        if getattr(ds, name, None) is not None:
            raw = getattr(ds, name)
            break
    if raw is None:
        pffg = getattr(ds, "SharedFunctionalGroupsSequence", None)
        if pffg and getattr(pffg[0], "PixelMeasuresSequence", None):
            raw = getattr(pffg[0].PixelMeasuresSequence[0], "PixelSpacing", None)
    vals = []
    try:
        vals = [_f(v) for v in (raw or [])]
    except TypeError:
        vals = []
    if len(vals) != 2 or any(v is None for v in vals):
        return result(
            key,
            WARN,
            None,
            thr,
            "Pixel spacing is missing: measurements will be in pixels.",
            "缺少像素间距 (PixelSpacing)：测量结果将以像素为单位。",
        )
    sp = [float(v) for v in vals if v is not None]
    txt = f"{sp[0]:g}\\{sp[1]:g}"
    if min(sp) <= 0:
        return result(
            key,
            WARN,
            txt,
            thr,
            f"Pixel spacing is zero ({txt}): measurements will be in pixels.",
            f"像素间距为零 ({txt})：测量结果将以像素为单位。",
        )
    if min(sp) < lo or max(sp) > hi:
        return result(
            key,
            WARN,
            txt,
            thr,
            f"Pixel spacing {txt} mm is outside the plausible range {thr}.",
            f"像素间距 {txt} mm 超出合理范围 {thr}。",
        )
    return result(key, PASS, txt, thr, f"Pixel spacing {txt} mm.", f"像素间距 {txt} mm。")


def _positions(series: SeriesInput) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted positions along the dominant slice normal (and the frame indices), or None."""
    frames = [f for f in series.frames() if f.position is not None and f.orientation is not None]
    if len(frames) < 3:
        return None
    common = Counter(tuple(round(v, 3) for v in f.orientation or ()) for f in frames)
    normal = slice_normal(common.most_common(1)[0][0])
    if normal is None:
        return None
    # project each plane's centre (a tilted plane's corner moves, its centre does not)
    ds = series.headers[0]
    rows, cols = _f(getattr(ds, "Rows", None)) or 0.0, _f(getattr(ds, "Columns", None)) or 0.0
    try:
        dr, dc = (float(v) for v in ds.PixelSpacing)
    except Exception:
        dr = dc = 0.0

    def centre(f: Frame) -> np.ndarray:
        o = np.asarray(f.orientation, float)
        return (
            np.asarray(f.position, float)
            + o[:3] * dc * (cols - 1) / 2.0
            + o[3:6] * dr * (rows - 1) / 2.0
        )

    z = np.array([float(np.dot(normal, centre(f))) for f in frames])
    order = np.argsort(z, kind="stable")
    return z[order], np.array([frames[i].index for i in order])


def _steps(series: SeriesInput) -> tuple[np.ndarray, np.ndarray, float] | None:
    pos = _positions(series)
    if pos is None:
        return None
    z, _ = pos
    d = np.diff(z)
    nonzero = d[np.abs(d) > 1e-3]
    if nonzero.size == 0:
        return z, d, 0.0
    return z, d, float(np.median(nonzero))


def _na_geometry(key: str, thr: str) -> RuleResult:
    return result(
        key,
        NA,
        None,
        thr,
        "Fewer than 3 images with position and orientation: not checked.",
        "少于 3 幅带位置和方向信息的图像：未检查。",
    )


def slice_missing(series: SeriesInput, p: Profile) -> RuleResult:
    key = "slice_missing"
    thr = f"step <= {p.gap_factor:g} x median step"
    s = _steps(series)
    if s is None:
        return _na_geometry(key, thr)
    z, d, med = s
    if med <= 0:
        return _na_geometry(key, thr)
    gaps = [i for i in range(d.size) if d[i] > p.gap_factor * med * 1.0001 + 1e-3]
    # steps of ~1.5x are uneven spacing (slice_spacing_uniform); whole multiples = missing
    gaps = [i for i in gaps if d[i] / med >= 1.75]
    if not gaps:
        return result(
            key,
            PASS,
            0,
            thr,
            f"No gaps (median step {med:g} mm).",
            f"无缺层 (中位层距 {med:g} mm)。",
        )
    i = gaps[0]
    n_missing = int(sum(round(d[j] / med) - 1 for j in gaps))
    a, b = float(z[i]), float(z[i + 1])
    more = f" (+{len(gaps) - 1} more gap(s))" if len(gaps) > 1 else ""
    more_zh = f" (另有 {len(gaps) - 1} 处)" if len(gaps) > 1 else ""
    return result(
        key,
        FAIL,
        n_missing,
        thr,
        f"{n_missing} missing slice(s) between z={a:.2f} and z={b:.2f} mm "
        f"(step {d[i]:.2f} mm, median {med:.2f} mm){more}.",
        f"在 z={a:.2f} 与 z={b:.2f} mm 之间缺失 {n_missing} 层 "
        f"(层距 {d[i]:.2f} mm，中位层距 {med:.2f} mm){more_zh}。",
    )


def slice_duplicate(series: SeriesInput, p: Profile) -> RuleResult:
    key = "slice_duplicate"
    thr = f"step > {p.duplicate_tolerance_mm:g} mm"
    s = _steps(series)
    if s is None:
        return _na_geometry(key, thr)
    z, d, _ = s
    dup = np.nonzero(np.abs(d) <= p.duplicate_tolerance_mm)[0]
    if dup.size == 0:
        return result(key, PASS, 0, thr, "No duplicated slice positions.", "无重复层位置。")
    zs = ", ".join(f"{z[i]:.2f}" for i in dup[:5])
    return result(
        key,
        FAIL,
        int(dup.size),
        thr,
        f"{dup.size} duplicated slice position(s) at z={zs} mm.",
        f"存在 {dup.size} 处重复层位置，z={zs} mm。",
    )


def slice_spacing_uniform(series: SeriesInput, p: Profile) -> RuleResult:
    key = "slice_spacing_uniform"
    thr = f"|step - median| <= {p.max_spacing_deviation:g} x median"
    s = _steps(series)
    if s is None:
        return _na_geometry(key, thr)
    z, d, med = s
    if med <= 0:
        return _na_geometry(key, thr)
    ratio = d / med
    # duplicates (~0) and whole-slice gaps (>= 1.75x) belong to the other two rules
    keep = (np.abs(d) > p.duplicate_tolerance_mm) & (ratio < 1.75)
    if not keep.any():
        return result(key, PASS, 0.0, thr, "No regular steps to compare.", "无可比较的层距。")
    dev = np.abs(ratio[keep] - 1.0)
    worst_dev = float(dev.max())
    n_bad = int((dev > p.max_spacing_deviation).sum())
    if worst_dev > p.fail_spacing_deviation:
        st = FAIL
    elif worst_dev > p.max_spacing_deviation:
        st = WARN
    else:
        return result(
            key,
            PASS,
            worst_dev,
            thr,
            f"Slice spacing regular ({med:g} mm, max deviation {worst_dev:.1%}).",
            f"层距均匀 ({med:g} mm，最大偏差 {worst_dev:.1%})。",
        )
    idx = np.nonzero(keep)[0][int(dev.argmax())]
    return result(
        key,
        st,
        worst_dev,
        thr,
        f"Uneven slice spacing: {n_bad} step(s) deviate from the median {med:.2f} mm, "
        f"worst {d[idx]:.2f} mm between z={z[idx]:.2f} and z={z[idx + 1]:.2f}.",
        f"层距不均匀：{n_bad} 处层距偏离中位值 {med:.2f} mm，"
        f"最大 {d[idx]:.2f} mm (z={z[idx]:.2f} 至 z={z[idx + 1]:.2f})。",
    )


def orientation_consistent(series: SeriesInput, p: Profile) -> RuleResult:
    key = "orientation_consistent"
    thr = f"direction cosines within {p.orientation_tolerance:g}"
    oris = [(f.index, f.orientation) for f in series.frames() if f.orientation is not None]
    if len(oris) < 2:
        return result(
            key, NA, None, thr, "Fewer than 2 oriented images.", "少于 2 幅带方向信息的图像。"
        )
    common = Counter(tuple(round(v, 3) for v in o) for _, o in oris).most_common(1)[0][0]
    ref = np.array(common)
    devs = [(float(np.max(np.abs(np.array(o) - ref))), i) for i, o in oris]
    bad = [(dv, i) for dv, i in devs if dv > p.orientation_tolerance]
    if not bad:
        return result(key, PASS, 0.0, thr, "One orientation throughout.", "所有图像方向一致。")
    dv, i = max(bad)
    angle = _angle_deg(ref, np.array(oris[[j for j, _ in oris].index(i)][1]))
    return result(
        key,
        FAIL,
        float(len(bad)),
        thr,
        f"{len(bad)} image(s) have a different orientation (image #{i + 1} tilted "
        f"{angle:.1f} degrees).",
        f"{len(bad)} 幅图像方向不一致 (第 {i + 1} 幅倾斜 {angle:.1f} 度)。",
    )


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = slice_normal(a), slice_normal(b)
    if na is None or nb is None:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(abs(float(np.dot(na, nb))), 0.0, 1.0))))


def slice_count(series: SeriesInput, p: Profile) -> RuleResult:
    key = "slice_count"
    n = len(series.frames())
    lo, hi = p.min_slices, p.max_slices
    parts = ([f">= {lo}"] if lo else []) + ([f"<= {hi}"] if hi else [])
    thr = " and ".join(parts) or "any"
    if lo is None and hi is None:
        return result(key, NA, n, thr, f"{n} image(s); no limit set.", f"{n} 幅图像；未设限制。")
    if lo is not None and n < lo:
        return result(
            key,
            FAIL,
            n,
            thr,
            f"Only {n} slice(s); at least {lo} required.",
            f"仅 {n} 层；至少需要 {lo} 层。",
        )
    if hi is not None and n > hi:
        return result(
            key, FAIL, n, thr, f"{n} slices; at most {hi} allowed.", f"{n} 层；最多允许 {hi} 层。"
        )
    return result(key, PASS, n, thr, f"{n} slice(s).", f"{n} 层。")


_CONTRAST_WORDS = ("CONTRAST", "C+", "C-", "NON-CON", "NONCON", "ENHANCE", "增强", "平扫", "造影")


def acquisition_recorded(series: SeriesInput, p: Profile) -> RuleResult:
    key = "acquisition_recorded"
    mod = series.modality
    missing_en, missing_zh = [], []
    if not _attr(series, "KVP"):
        missing_en.append("kVp")
        missing_zh.append("管电压 (kVp)")
    if mod == "CT" and not _attr(series, "ConvolutionKernel"):
        missing_en.append("reconstruction kernel")
        missing_zh.append("重建核")
    if mod in ("CT", "MR"):
        desc = " ".join(
            _attr(series, k).upper()
            for k in ("StudyDescription", "SeriesDescription", "ProtocolName")
        )
        has = bool(_attr(series, "ContrastBolusAgent")) or any(w in desc for w in _CONTRAST_WORDS)
        if not has:
            missing_en.append("contrast")
            missing_zh.append("对比剂")
    thr = "kVp, kernel and contrast recorded"
    if missing_en:
        return result(
            key,
            WARN,
            ", ".join(missing_en),
            thr,
            f"Not recorded: {', '.join(missing_en)}.",
            f"未记录：{'、'.join(missing_zh)}。",
        )
    return result(key, PASS, None, thr, "Acquisition parameters recorded.", "采集参数已记录。")


def patient_age(series: SeriesInput, p: Profile) -> RuleResult:
    key = "patient_age"
    age = _attr(series, "PatientAge")
    if age:
        return result(key, PASS, age, "present", f"Patient age {age}.", f"患者年龄 {age}。")
    if _attr(series, "PatientBirthDate") and _attr(series, "StudyDate"):
        return result(
            key,
            PASS,
            None,
            "present",
            "Age derivable from birth and study dates.",
            "可由出生日期和检查日期推算年龄。",
        )
    return result(key, WARN, None, "present", "Patient age is not recorded.", "未记录患者年龄。")
