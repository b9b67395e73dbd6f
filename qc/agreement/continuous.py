"""Agreement on continuous measures (diameters, volumes).

- ICC from the two-way ANOVA of a complete units x raters matrix. The forms
  are named both ways: McGraw & Wong (1996) "two-way random, absolute
  agreement, single / average measures" is Shrout & Fleiss (1979) ICC(2,1) /
  ICC(2,k); the one-way ICC(1,1)/ICC(1,k) and the consistency ICC(3,1)/
  ICC(3,k) come with them from the same sums. The sums are additive over
  units, so a case-level bootstrap is a weighted sum (see stats.py).
- Bland-Altman: bias (mean difference a - b), its SD and the 95% limits of
  agreement bias +- 1.96 SD (Bland & Altman 1986).
- Within-subject coefficient of variation: root mean square of each unit's
  SD / mean over units with at least two values (the RMS method).
"""

from __future__ import annotations

import numpy as np

from qc.agreement.stats import Additive, per_case, safe_divide

ICC_FORMS = {
    "ICC(1,1)": "one-way random, absolute agreement, single measures",
    "ICC(2,1)": "two-way random, absolute agreement, single measures",
    "ICC(3,1)": "two-way mixed, consistency, single measures",
    "ICC(1,k)": "one-way random, absolute agreement, average measures",
    "ICC(2,k)": "two-way random, absolute agreement, average measures",
    "ICC(3,k)": "two-way mixed, consistency, average measures",
}


def _cases(n_units: int, case_index, n_cases):
    if case_index is None:
        return np.arange(n_units), n_units
    idx = np.asarray(case_index, dtype=int)
    size = n_cases if n_cases is not None else (int(idx.max()) + 1 if len(idx) else 0)
    return idx, size


def complete_rows(matrix) -> np.ndarray:
    x = np.asarray(matrix, dtype=float)
    return np.isfinite(x).all(axis=1) if x.ndim == 2 else np.zeros(0, dtype=bool)


def icc_additive(matrix, form: str = "ICC(2,1)", case_index=None, n_cases=None) -> Additive:
    """ICC of the complete rows of a units x raters matrix (rows with a missing
    rating are left out, as in every two-way ANOVA ICC)."""
    if form not in ICC_FORMS:
        raise ValueError(f"unknown ICC form {form!r}; known: {', '.join(ICC_FORMS)}")
    x = np.asarray(matrix, dtype=float)
    keep = complete_rows(x)
    k = x.shape[1] if x.ndim == 2 else 0
    xs = np.where(keep[:, None], np.nan_to_num(x), 0.0) if k else np.zeros((len(x), 0))
    s1 = xs.sum(axis=1)
    unit = np.column_stack([keep.astype(float), s1, (xs**2).sum(axis=1), s1**2, xs])
    idx, size = _cases(len(x), case_index, n_cases)
    stats = per_case(unit, idx, size)

    def finish(s: np.ndarray) -> np.ndarray:
        n, t, t2, r2 = s[..., 0], s[..., 1], s[..., 2], s[..., 3]
        cols = s[..., 4:]
        correction = safe_divide(t**2, n * k)
        sst = t2 - correction
        ssr = r2 / k - correction
        ssc = safe_divide((cols**2).sum(axis=-1), n) - correction
        sse = sst - ssr - ssc
        msr = safe_divide(ssr, n - 1)
        msc = ssc / max(k - 1, 1)
        mse = safe_divide(sse, (n - 1) * (k - 1))
        msw = safe_divide(ssc + sse, n * (k - 1))
        if form == "ICC(1,1)":
            return safe_divide(msr - msw, msr + (k - 1) * msw)
        if form == "ICC(2,1)":
            return safe_divide(msr - mse, msr + (k - 1) * mse + k * safe_divide(msc - mse, n))
        if form == "ICC(3,1)":
            return safe_divide(msr - mse, msr + (k - 1) * mse)
        if form == "ICC(1,k)":
            return safe_divide(msr - msw, msr)
        if form == "ICC(2,k)":
            return safe_divide(msr - mse, msr + safe_divide(msc - mse, n))
        return safe_divide(msr - mse, msr)

    return Additive(stats, finish)


def icc(matrix) -> dict[str, float]:
    """Every form at once: {"ICC(2,1)": ..., ...}."""
    return {form: icc_additive(matrix, form).value() for form in ICC_FORMS}


def bland_altman_additive(a, b, case_index=None, n_cases=None) -> dict[str, Additive]:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    both = np.isfinite(a) & np.isfinite(b)
    d = np.where(both, a - b, 0.0)
    unit = np.column_stack([both.astype(float), d, d**2])
    idx, size = _cases(len(a), case_index, n_cases)
    stats = per_case(unit, idx, size)

    def bias(s):
        return safe_divide(s[..., 1], s[..., 0])

    def sd(s):
        n = s[..., 0]
        var = safe_divide(s[..., 2] - safe_divide(s[..., 1] ** 2, n), n - 1)
        return np.sqrt(np.maximum(var, 0))

    return {
        "bias": Additive(stats, bias),
        "sd": Additive(stats, sd),
        "loa_low": Additive(stats, lambda s: bias(s) - 1.96 * sd(s)),
        "loa_high": Additive(stats, lambda s: bias(s) + 1.96 * sd(s)),
    }


def bland_altman(a, b) -> dict[str, float]:
    """{"bias", "sd", "loa_low", "loa_high", "n"} of the pairs where both are known."""
    parts = bland_altman_additive(a, b)
    out = {name: add.value() for name, add in parts.items()}
    out["n"] = int(parts["bias"].stats[:, 0].sum())
    return out


def cv_additive(matrix, case_index=None, n_cases=None) -> Additive:
    x = np.asarray(matrix, dtype=float)
    finite = np.isfinite(x)
    m = finite.sum(axis=1)
    xs = np.where(finite, x, 0.0)
    s1, s2 = xs.sum(axis=1), (xs**2).sum(axis=1)
    mean = safe_divide(s1, m.astype(float))
    var = np.maximum(safe_divide(s2 - safe_divide(s1**2, m.astype(float)), m - 1.0), 0.0)
    ok = (m >= 2) & np.isfinite(mean) & (mean != 0)
    unit = np.column_stack([np.where(ok, var / np.where(ok, mean, 1) ** 2, 0.0), ok.astype(float)])
    idx, size = _cases(len(x), case_index, n_cases)
    return Additive(per_case(unit, idx, size), lambda s: np.sqrt(safe_divide(s[..., 0], s[..., 1])))


def coefficient_of_variation(matrix) -> float:
    return cv_additive(matrix).value()
