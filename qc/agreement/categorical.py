"""Agreement on categorical and ordinal ratings.

Ratings come as a units x raters float matrix with NaN for a missing rating
(a reader who did not rate that unit). Categories are the sorted distinct
values unless given. Each coefficient has an `*_additive` form (per-case
sufficient statistics, see stats.py) and a plain function for one value.

Formulas:
- percent agreement: mean over units rated at least twice of the share of
  agreeing rater pairs, sum_k r_ik (r_ik - 1) / (r_i (r_i - 1));
- Cohen's kappa with agreement weights w (identity; linear 1 - |i-j|/(q-1);
  quadratic 1 - (i-j)^2/(q-1)^2): (po - pe) / (1 - pe), po = sum w*C/N,
  pe = sum w * outer(row, col)/N^2 (scikit-learn's cohen_kappa_score);
- Fleiss' kappa (Fleiss 1971) and its standard error under kappa = 0 (Fleiss,
  Nee & Landis 1979, as R irr::kappam.fleiss); with missing ratings, Gwet's
  generalisation (irrCAC's fleiss.kappa.raw);
- Krippendorff's alpha from the coincidence matrix (Krippendorff 2011), with
  the nominal, ordinal (ranks from the pooled marginals) and interval metrics;
  interval uses squared differences directly, so continuous values with many
  distinct levels stay cheap;
- Gwet's AC1 (identity weights) and AC2 (linear/quadratic) for several raters
  with missing ratings (Gwet 2014, as irrCAC's gwet.ac1.raw).
"""

from __future__ import annotations

import numpy as np

from qc.agreement.stats import Additive, per_case, safe_divide

LEVELS = ("nominal", "ordinal", "interval")


def categories_of(ratings: np.ndarray) -> np.ndarray:
    values = np.asarray(ratings, dtype=float)
    return np.unique(values[np.isfinite(values)])


def counts(ratings: np.ndarray, categories: np.ndarray | None = None) -> np.ndarray:
    """(units, q) how many raters gave each category to each unit."""
    r = np.asarray(ratings, dtype=float)
    if r.ndim == 1:
        r = r[:, None]
    cats = categories_of(r) if categories is None else np.asarray(categories, dtype=float)
    out = np.zeros((r.shape[0], len(cats)))
    if not len(cats) or not r.size:
        return out
    finite = np.isfinite(r)
    codes = np.searchsorted(cats, np.where(finite, r, cats[0]))
    codes = np.clip(codes, 0, len(cats) - 1)
    known = finite & (cats[codes] == np.where(finite, r, np.nan))
    rows = np.broadcast_to(np.arange(r.shape[0])[:, None], r.shape)
    np.add.at(out, (rows[known], codes[known]), 1.0)
    return out


def agreement_weights(q: int, weights: str | None) -> np.ndarray:
    """Agreement weights (1 on the diagonal) for q ordered categories."""
    if weights in (None, "identity", "unweighted"):
        return np.eye(q)
    i, j = np.indices((q, q))
    span = max(q - 1, 1)
    if weights == "linear":
        return 1.0 - np.abs(i - j) / span
    if weights == "quadratic":
        return 1.0 - (i - j) ** 2 / span**2
    raise ValueError(f"unknown weights {weights!r}")


def _cases(n_units: int, case_index) -> tuple[np.ndarray, int]:
    if case_index is None:
        return np.arange(n_units), n_units
    idx = np.asarray(case_index, dtype=int)
    return idx, int(idx.max()) + 1 if len(idx) else 0


# -- percent agreement -------------------------------------------------------


def percent_agreement_additive(ratings, case_index=None, n_cases=None) -> Additive:
    n = counts(ratings)
    r = n.sum(axis=1)
    pairable = r >= 2
    share = safe_divide((n * (n - 1)).sum(axis=1), r * (r - 1))
    unit = np.column_stack([np.where(pairable, share, 0.0), pairable.astype(float)])
    idx, k = _cases(len(unit), case_index)
    stats = per_case(unit, idx, n_cases if n_cases is not None else k)
    return Additive(stats, lambda s: safe_divide(s[..., 0], s[..., 1]))


def percent_agreement(ratings) -> float:
    return percent_agreement_additive(ratings).value()


# -- Cohen's kappa -------------------------------------------------------------


def cohen_kappa_additive(
    a, b, weights: str | None = None, categories=None, case_index=None, n_cases=None
) -> Additive:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    both = np.isfinite(a) & np.isfinite(b)
    cats = (
        categories_of(np.concatenate([a[both], b[both]]))
        if categories is None
        else np.asarray(categories, dtype=float)
    )
    q = len(cats)
    w = agreement_weights(q, weights)
    ia = np.clip(np.searchsorted(cats, np.where(both, a, cats[0] if q else 0)), 0, max(q - 1, 0))
    ib = np.clip(np.searchsorted(cats, np.where(both, b, cats[0] if q else 0)), 0, max(q - 1, 0))
    unit = np.zeros((len(a), q * q))
    if q:
        unit[np.flatnonzero(both), (ia * q + ib)[both]] = 1.0
    idx, k = _cases(len(a), case_index)
    stats = per_case(unit, idx, n_cases if n_cases is not None else k)

    def finish(s: np.ndarray) -> np.ndarray:
        c = s.reshape(s.shape[:-1] + (q, q))
        total = c.sum(axis=(-1, -2))
        po = safe_divide((c * w).sum(axis=(-1, -2)), total)
        rows, cols = c.sum(axis=-1), c.sum(axis=-2)
        pe = safe_divide(np.einsum("...i,ij,...j->...", rows, w, cols), total**2)
        return safe_divide(po - pe, 1 - pe)

    return Additive(stats, finish)


def cohen_kappa(a, b, weights: str | None = None, categories=None) -> float:
    return cohen_kappa_additive(a, b, weights, categories).value()


# -- Fleiss' kappa -------------------------------------------------------------


def fleiss_kappa_additive(ratings, case_index=None, n_cases=None, categories=None) -> Additive:
    """Fleiss' kappa; with missing ratings, the chance term uses the mean of the
    units' category shares (Gwet's generalisation, as irrCAC), which equals
    Fleiss' pooled proportions when every unit has the same raters."""
    gwet = gwet_ac_additive(ratings, None, case_index, n_cases, categories)
    q = (gwet.stats.shape[1] - 3) if gwet.stats.ndim == 2 else 0

    def finish(s: np.ndarray) -> np.ndarray:
        pa = safe_divide(s[..., 0], s[..., 1])
        pi = safe_divide(s[..., 2 : 2 + q], s[..., -1:])
        pe = (pi**2).sum(axis=-1)
        return safe_divide(pa - pe, 1 - pe)

    return Additive(gwet.stats, finish)


def fleiss_kappa(ratings, categories=None) -> tuple[float, float]:
    """(kappa, standard error under kappa = 0). The SE needs a constant number
    of raters; with varying counts it uses their mean."""
    additive = fleiss_kappa_additive(ratings, categories=categories)
    kappa = additive.value()
    n = counts(ratings, categories)
    r = n.sum(axis=1)
    n = n[r >= 2]
    if not len(n):
        return float("nan"), float("nan")
    m = float(n.sum(axis=1).mean())
    p = n.sum(axis=0) / n.sum()
    pq = p * (1 - p)
    s = pq.sum()
    if s == 0:
        return kappa, float("nan")
    se = np.sqrt(2) / (s * np.sqrt(len(n) * m * (m - 1))) * np.sqrt(s**2 - (pq * (1 - 2 * p)).sum())
    return kappa, float(se)


# -- Krippendorff's alpha ------------------------------------------------------


def krippendorff_alpha_additive(
    ratings, level: str = "nominal", case_index=None, n_cases=None
) -> Additive:
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; known: {', '.join(LEVELS)}")
    r = np.asarray(ratings, dtype=float)
    if r.ndim == 1:
        r = r[:, None]
    finite = np.isfinite(r)
    m_u = finite.sum(axis=1)
    pairable = m_u >= 2
    idx, k = _cases(len(r), case_index)
    size = n_cases if n_cases is not None else k
    if level == "interval":
        x = np.where(finite & pairable[:, None], r, 0.0)
        m = np.where(pairable, m_u, 0).astype(float)
        s1, s2 = x.sum(axis=1), (x**2).sum(axis=1)
        d_within = safe_divide(2 * (m * s2 - s1**2), m - 1)
        unit = np.column_stack([np.where(pairable, d_within, 0.0), m, s1, s2])
        stats = per_case(unit, idx, size)

        def finish(s: np.ndarray) -> np.ndarray:
            n, t1, t2 = s[..., 1], s[..., 2], s[..., 3]
            d_total = 2 * (n * t2 - t1**2)
            return 1 - safe_divide((n - 1) * s[..., 0], d_total)

        return Additive(stats, finish)
    cats = categories_of(r)
    q = len(cats)
    n = counts(r, cats) * pairable[:, None]
    coinc = np.einsum("ui,uj->uij", n, n)
    coinc[:, np.arange(q), np.arange(q)] -= n
    coinc = coinc / np.where(pairable, m_u - 1, 1)[:, None, None]
    stats = per_case(coinc.reshape(len(r), q * q), idx, size)
    i, j = np.indices((q, q))

    def finish(s: np.ndarray) -> np.ndarray:
        o = s.reshape(s.shape[:-1] + (q, q))
        n_c = o.sum(axis=-1)
        total = n_c.sum(axis=-1)
        if level == "nominal":
            delta = np.broadcast_to((i != j).astype(float), o.shape)
        else:  # ordinal: (sum of marginals from c to k, minus half the ends)^2
            cum = np.cumsum(n_c, axis=-1)
            lo, hi = np.minimum(i, j), np.maximum(i, j)
            between = (
                np.take(cum, hi, axis=-1) - np.take(cum, lo, axis=-1) + np.take(n_c, lo, axis=-1)
            )
            ends = (np.take(n_c, i, axis=-1) + np.take(n_c, j, axis=-1)) / 2
            delta = (between - ends) ** 2
        observed = (o * delta).sum(axis=(-1, -2))
        expected = np.einsum("...i,...ij,...j->...", n_c, delta, n_c)
        return 1 - safe_divide((total - 1) * observed, expected)

    return Additive(stats, finish)


def krippendorff_alpha(ratings, level: str = "nominal") -> float:
    """Alpha of a units x raters matrix (NaN = missing); the krippendorff
    package takes the transpose (raters x units)."""
    return krippendorff_alpha_additive(ratings, level).value()


# -- Gwet's AC1 / AC2 ------------------------------------------------------------


def gwet_ac_additive(
    ratings, weights: str | None = None, case_index=None, n_cases=None, categories=None
) -> Additive:
    n = counts(ratings, categories)
    q = n.shape[1]
    w = agreement_weights(q, weights)
    r = n.sum(axis=1)
    n_star = n @ w.T
    pairable = r >= 2
    rated = r >= 1
    pa_i = safe_divide((n * (n_star - 1)).sum(axis=1), r * (r - 1))
    pi_i = safe_divide(n, r[:, None])
    unit = np.column_stack(
        [
            np.where(pairable, pa_i, 0.0),
            pairable.astype(float),
            np.where(rated[:, None], pi_i, 0.0),
            rated.astype(float),
        ]
    )
    idx, k = _cases(len(unit), case_index)
    stats = per_case(unit, idx, n_cases if n_cases is not None else k)
    t_w = w.sum()

    def finish(s: np.ndarray) -> np.ndarray:
        pa = safe_divide(s[..., 0], s[..., 1])
        pi = safe_divide(s[..., 2 : 2 + q], s[..., -1:])
        pe = t_w / max(q * (q - 1), 1) * (pi * (1 - pi)).sum(axis=-1)
        return safe_divide(pa - pe, 1 - pe)

    return Additive(stats, finish)


def gwet_ac(ratings, weights: str | None = None, categories=None) -> float:
    """AC1 with weights=None; AC2 with "linear" or "quadratic"."""
    return gwet_ac_additive(ratings, weights, categories=categories).value()
