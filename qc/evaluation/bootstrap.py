"""Seeded bootstrap over scans (or cases), vectorised.

A resample draws n units with replacement; it is held as a row of draw counts
(weights), so that a figure computed as weighted sums over units gives every
resample at once by matrix products instead of a Python loop per resample.
Generator: numpy's PCG64 seeded with `seed`, so a result is reproducible from
its stated seed. Intervals are the 2.5th and 97.5th percentiles of the
resampled figures (numpy's default linear interpolation), resamples where the
figure is undefined (e.g. no positive case drawn) left out.
"""

from __future__ import annotations

import warnings

import numpy as np

INTERVAL = "percentile 95%"


def generator(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) unit indices drawn with replacement."""
    if n <= 0 or resamples <= 0:
        return np.zeros((max(resamples, 0), 0), dtype=np.int64)
    return generator(seed).integers(0, n, size=(resamples, n))


def weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) draw counts, float64 (sums of counts stay exact)."""
    idx = resample_indices(n, resamples, seed)
    if idx.size == 0:
        return np.zeros((max(resamples, 0), n))
    offsets = (np.arange(resamples) * n)[:, None]
    counts = np.bincount((idx + offsets).ravel(), minlength=resamples * n)
    return counts.reshape(resamples, n).astype(np.float64)


def interval(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2.5th and 97.5th percentiles along `axis`, NaN samples left out
    (NaN where every sample is NaN)."""
    samples = np.asarray(samples, dtype=float)
    if samples.shape[axis] == 0:
        shape = list(samples.shape)
        del shape[axis]
        return np.full(shape, np.nan), np.full(shape, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN
        lo, hi = np.nanpercentile(samples, [2.5, 97.5], axis=axis)
    return lo, hi


def two_sided_p(differences: np.ndarray) -> float:
    """Two-sided p of "no difference" from a bootstrap distribution of a
    difference: twice the smaller share of resamples on either side of 0
    (ties at 0 counted half to each side), at most 1; NaN resamples left out."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    below = (np.count_nonzero(d < 0) + 0.5 * np.count_nonzero(d == 0)) / d.size
    above = (np.count_nonzero(d > 0) + 0.5 * np.count_nonzero(d == 0)) / d.size
    return float(min(1.0, 2.0 * min(below, above)))


def figure(value: float | None, samples: np.ndarray | None) -> dict:
    """{"value", "ci"} for a result dict (None for undefined numbers)."""
    v = None if value is None or not np.isfinite(value) else float(value)
    if samples is None or np.asarray(samples).size == 0:
        return {"value": v, "ci": None}
    lo, hi = interval(np.asarray(samples, dtype=float))
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return {"value": v, "ci": None}
    return {"value": v, "ci": [lo, hi]}
