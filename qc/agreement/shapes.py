"""Agreement of shapes: voxel masks in 3D, distances in mm on anisotropic grids.

Masks are boolean arrays indexed (slice, row, column); `spacing` is the voxel
size in mm in the same order (slice spacing, row spacing, column spacing).

- Dice 2|A n B| / (|A| + |B|), IoU |A n B| / |A u B|;
- surfaces are the mask voxels with a face neighbour outside the mask
  (6-connectivity); surface distances are Euclidean distances in mm from each
  surface voxel of one mask to the nearest surface voxel of the other (exact,
  by a k-d tree over the voxel centres scaled by the spacing);
- HD95: the larger of the two directed 95th percentiles (as MONAI's
  compute_hausdorff_distance(percentile=95)); HD (max) is what SimpleITK's
  HausdorffDistanceImageFilter reports on the same surfaces;
- ASSD: the mean of all surface distances of both directions;
- NSD (normalised surface distance, Nikolov et al. 2021) at tolerance tau:
  the share of both surfaces lying within tau mm of the other.
- STAPLE (Warfield 2004): the estimated truth and each reader's sensitivity
  and specificity against it, through SimpleITK's STAPLEImageFilter
  (`staple`), or the same binary EM in NumPy (`staple_em`, what the report
  uses: ~40x faster on the small boxes of single findings; the tests hold it
  to SimpleITK's numbers).
Two empty masks agree perfectly (Dice 1, distances 0); one empty mask against
a non-empty one has Dice 0 and undefined distances (NaN).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

_FACE = ndimage.generate_binary_structure(3, 1)


def _pad(mask: np.ndarray) -> np.ndarray:
    return np.pad(np.asarray(mask, dtype=bool), 1)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.count_nonzero(a & b)) / total


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = int(np.count_nonzero(a | b))
    return 1.0 if union == 0 else int(np.count_nonzero(a & b)) / union


def surface(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face neighbour outside (on a 1-voxel padded copy)."""
    m = _pad(mask)
    return m & ~ndimage.binary_erosion(m, structure=_FACE)


def surface_points(mask: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """(n, 3) positions in mm of the mask's surface voxels."""
    return np.argwhere(surface(mask)) * np.asarray(spacing, dtype=float)


def surface_distances(
    a: np.ndarray, b: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """(distances from A's surface to B's, from B's surface to A's) in mm: the
    exact nearest-neighbour distances between surface voxel centres (a k-d tree;
    the same numbers as an exact EDT of the other surface with this sampling)."""
    pa, pb = surface_points(a, spacing), surface_points(b, spacing)
    return _distances(pa, pb)


def _distances(pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.spatial import cKDTree

    if not len(pa) or not len(pb):
        return np.zeros(0), np.zeros(0)
    return cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]


def _both_empty(a, b) -> bool | None:
    ea, eb = not np.any(a), not np.any(b)
    if ea and eb:
        return True
    if ea or eb:
        return False
    return None


def hausdorff(a, b, spacing=(1.0, 1.0, 1.0), percentile: float = 100.0) -> float:
    empty = _both_empty(a, b)
    if empty is not None:
        return 0.0 if empty else float("nan")
    d_ab, d_ba = surface_distances(a, b, spacing)
    return float(max(np.percentile(d_ab, percentile), np.percentile(d_ba, percentile)))


def hd95(a, b, spacing=(1.0, 1.0, 1.0)) -> float:
    return hausdorff(a, b, spacing, 95.0)


def assd(a, b, spacing=(1.0, 1.0, 1.0)) -> float:
    empty = _both_empty(a, b)
    if empty is not None:
        return 0.0 if empty else float("nan")
    d_ab, d_ba = surface_distances(a, b, spacing)
    return float((d_ab.sum() + d_ba.sum()) / (len(d_ab) + len(d_ba)))


def nsd(a, b, spacing=(1.0, 1.0, 1.0), tolerance_mm: float = 1.0) -> float:
    empty = _both_empty(a, b)
    if empty is not None:
        return 1.0 if empty else 0.0
    d_ab, d_ba = surface_distances(a, b, spacing)
    close = np.count_nonzero(d_ab <= tolerance_mm) + np.count_nonzero(d_ba <= tolerance_mm)
    return float(close / (len(d_ab) + len(d_ba)))


def compare(a, b, spacing=(1.0, 1.0, 1.0), tolerance_mm: float = 1.0) -> dict[str, float]:
    """Every measure of one pair, computing the distance maps once."""
    out = {"dice": dice(a, b), "iou": iou(a, b)}
    empty = _both_empty(a, b)
    if empty is not None:
        zero = 0.0 if empty else float("nan")
        out.update(hd95=zero, assd=zero, nsd=1.0 if empty else 0.0)
        return out
    d_ab, d_ba = surface_distances(a, b, spacing)
    return {**out, **_summary(d_ab, d_ba, tolerance_mm)}


def compare_points(pa: np.ndarray, pb: np.ndarray, tolerance_mm: float = 1.0) -> dict[str, float]:
    """Distance measures from precomputed surface points (see surface_points)."""
    return _summary(*_distances(pa, pb), tolerance_mm)


def _summary(d_ab: np.ndarray, d_ba: np.ndarray, tolerance_mm: float) -> dict[str, float]:
    out = {}
    n = len(d_ab) + len(d_ba)
    out["hd95"] = float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95)))
    out["assd"] = float((d_ab.sum() + d_ba.sum()) / n)
    close = np.count_nonzero(d_ab <= tolerance_mm) + np.count_nonzero(d_ba <= tolerance_mm)
    out["nsd"] = float(close / n)
    return out


def staple(
    masks: Sequence[np.ndarray], spacing=(1.0, 1.0, 1.0), threshold: float = 0.5
) -> dict[str, object]:
    """SimpleITK's STAPLE on readers' masks of one finding.

    Returns {"sensitivity": [per mask], "specificity": [per mask],
    "probability": array, "consensus": bool array (probability >= threshold),
    "iterations": int}."""
    import SimpleITK as sitk

    images = []
    for m in masks:
        image = sitk.GetImageFromArray(np.asarray(m, dtype=np.uint8))
        image.SetSpacing(tuple(float(s) for s in reversed(tuple(spacing))))  # x, y, z
        images.append(image)
    flt = sitk.STAPLEImageFilter()
    flt.SetForegroundValue(1.0)
    probability = sitk.GetArrayFromImage(flt.Execute(images))
    return {
        "sensitivity": [float(v) for v in flt.GetSensitivity()],
        "specificity": [float(v) for v in flt.GetSpecificity()],
        "probability": probability,
        "consensus": probability >= threshold,
        "iterations": int(flt.GetElapsedIterations()),
    }


def staple_em(
    masks: Sequence[np.ndarray], max_iterations: int = 200, tolerance: float = 1e-7
) -> dict[str, object]:
    """Binary STAPLE by expectation-maximisation, as ITK's STAPLEImageFilter:
    prior = mean foreground fraction of the inputs, sensitivity and
    specificity start at 0.99999, iterate until their summed change is below
    `tolerance`. Voxels are grouped by their pattern of votes (at most 2^r
    patterns for r readers), so each iteration costs O(2^r r), not O(voxels)."""
    d = np.stack([np.asarray(m, dtype=bool).ravel() for m in masks])
    shape = np.asarray(masks[0]).shape
    code = (d.astype(np.int64) << np.arange(len(d), dtype=np.int64)[:, None]).sum(axis=0)
    weight = np.bincount(code, minlength=1 << len(d)).astype(float)
    present = np.flatnonzero(weight)
    lookup = np.zeros(len(weight), dtype=np.int64)
    lookup[present] = np.arange(len(present))
    inverse = lookup[code]
    weight = weight[present]
    votes = ((present[None, :] >> np.arange(len(d))[:, None]) & 1).astype(float)
    prior = float(d.mean())
    p = np.full(len(d), 0.99999)
    q = np.full(len(d), 0.99999)
    w = np.zeros(votes.shape[1])
    iterations = 0
    for iterations in range(1, max_iterations + 1):  # noqa: B007
        fg = prior * np.prod(np.where(votes > 0, p[:, None], 1 - p[:, None]), axis=0)
        bg = (1 - prior) * np.prod(np.where(votes > 0, 1 - q[:, None], q[:, None]), axis=0)
        w = fg / np.where(fg + bg > 0, fg + bg, 1)
        ww, wb = w * weight, (1 - w) * weight
        p_new = (votes * ww).sum(axis=1) / max(ww.sum(), 1e-300)
        q_new = ((1 - votes) * wb).sum(axis=1) / max(wb.sum(), 1e-300)
        change = np.abs(p_new - p).sum() + np.abs(q_new - q).sum()
        p, q = p_new, q_new
        if change < tolerance:
            break
    probability = w[np.asarray(inverse).reshape(-1)].reshape(shape)
    return {
        "sensitivity": [float(v) for v in p],
        "specificity": [float(v) for v in q],
        "probability": probability,
        "consensus": probability >= 0.5,
        "iterations": iterations,
    }
