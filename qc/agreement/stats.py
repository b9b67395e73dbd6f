"""Additive sufficient statistics, case-level bootstrap and estimates with CIs.

A coefficient is an `Additive`: an (n_cases, m) array of per-case statistics
whose column sums determine it, and a finisher mapping (..., m) sums to (...)
values. Units (clusters, reader pairs on a cluster, case labels) are first
summed into the case they belong to (`per_case`), so resampling cases keeps
every unit of a case together (the case is the independent unit).

The bootstrap draws cases with replacement (within strata when asked) as a
(B, n_cases) count matrix from a seeded NumPy generator: the same seed and the
same cases give the same intervals on every machine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

Finisher = Callable[[np.ndarray], np.ndarray]


def per_case(unit_stats: np.ndarray, case_index: np.ndarray, n_cases: int) -> np.ndarray:
    """Sum unit rows into their cases: (n_units, m) -> (n_cases, m)."""
    unit_stats = np.asarray(unit_stats, dtype=float)
    m = unit_stats.shape[1] if unit_stats.ndim == 2 else 0
    out = np.zeros((n_cases, m))
    if len(unit_stats):
        np.add.at(out, np.asarray(case_index, dtype=int), unit_stats)
    return out


@dataclass(frozen=True)
class Additive:
    """Per-case additive statistics of one coefficient and its finisher."""

    stats: np.ndarray  # (n_cases, m)
    finish: Finisher

    def value(self, cases: np.ndarray | None = None) -> float:
        rows = self.stats if cases is None else self.stats[cases]
        out = self.finish(rows.sum(axis=0)[None, :])
        return float(np.asarray(out).reshape(-1)[0])

    def replicates(self, weights: np.ndarray, cases: np.ndarray | None = None) -> np.ndarray:
        """Finisher of each bootstrap replicate. `weights` is (B, n_cases), or
        (B, len(cases)) when a subset of cases is given (drawn within it)."""
        rows = self.stats if cases is None else self.stats[cases]
        return np.asarray(self.finish(weights @ rows), dtype=float)


def bootstrap_weights(
    n_cases: int,
    replicates: int,
    seed: int,
    strata: Sequence | None = None,
) -> np.ndarray:
    """(replicates, n_cases) resampling counts: cases drawn with replacement,
    separately within each stratum when `strata` (one label per case) is given."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((replicates, n_cases))
    if n_cases == 0 or replicates == 0:
        return weights
    if strata is None:
        groups = [np.arange(n_cases)]
    else:
        labels = np.asarray([str(s) for s in strata])
        groups = [np.flatnonzero(labels == value) for value in sorted(set(labels.tolist()))]
    rows = np.arange(replicates)[:, None]
    for members in groups:
        draws = members[rng.integers(0, len(members), size=(replicates, len(members)))]
        np.add.at(weights, (np.broadcast_to(rows, draws.shape), draws), 1.0)
    return weights


@dataclass(frozen=True)
class Estimate:
    """A coefficient, its percentile bootstrap interval and the units behind it."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def estimate(
    additive: Additive,
    weights: np.ndarray | None,
    n: int,
    confidence: float = 0.95,
    cases: np.ndarray | None = None,
) -> dict:
    """Point estimate and percentile CI as a JSON-ready dict."""
    with np.errstate(all="ignore"):
        value = additive.value(cases) if n else float("nan")
        low = high = float("nan")
        if weights is not None and weights.shape[0] and n and np.isfinite(value):
            reps = additive.replicates(weights, cases)
            reps = reps[np.isfinite(reps)]
            if len(reps) >= max(10, weights.shape[0] // 2):
                tail = (1 - confidence) / 2 * 100
                low, high = np.percentile(reps, [tail, 100 - tail])
    return Estimate(_clean(value), _clean(low), _clean(high), int(n)).as_dict()


def safe_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / np.where(b != 0, b, 1), np.nan)
