"""ICC, Bland-Altman and CV against Shrout & Fleiss (1979) and pingouin."""

from __future__ import annotations

import numpy as np
import pytest

from qc.agreement import continuous as cont

# Shrout & Fleiss (1979), Table 2: six targets rated by four judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]],
    dtype=float,
)


def test_shrout_fleiss_1979_table_4():
    got = cont.icc(SHROUT_FLEISS)
    published = {
        "ICC(1,1)": 0.17, "ICC(2,1)": 0.29, "ICC(3,1)": 0.71,
        "ICC(1,k)": 0.44, "ICC(2,k)": 0.62, "ICC(3,k)": 0.91,
    }  # fmt: skip
    for form, value in published.items():
        assert got[form] == pytest.approx(value, abs=0.005), form


# pingouin 0.7.0 intraclass_corr on the same data (computed once in a separate
# environment; pingouin's dependencies are not the project's).
PINGOUIN_SF = {
    "ICC(1,1)": 0.1657417684054755, "ICC(2,1)": 0.28976377952755916,
    "ICC(3,1)": 0.7148407148407154, "ICC(1,k)": 0.44279713367926876,
    "ICC(2,k)": 0.6200505475989893, "ICC(3,k)": 0.9093155423770697,
}  # fmt: skip
PINGOUIN_RANDOM = {
    "ICC(1,1)": 0.6739326795983214, "ICC(2,1)": 0.6806564270792292,
    "ICC(3,1)": 0.7255399244500432, "ICC(1,k)": 0.8611217976684798,
    "ICC(2,k)": 0.864760159858368, "ICC(3,k)": 0.888024832943276,
}  # fmt: skip


def _random():
    rng = np.random.default_rng(7)
    return rng.normal(10, 3, (40, 1)) + rng.normal(0, 1.5, (40, 3)) + np.array([0, 0.5, -0.3])


@pytest.mark.parametrize(("data", "expected"), [("sf", PINGOUIN_SF), ("random", PINGOUIN_RANDOM)])
def test_icc_matches_pingouin(data, expected):
    got = cont.icc(SHROUT_FLEISS if data == "sf" else _random())
    for form, value in expected.items():
        assert got[form] == pytest.approx(value, abs=1e-9), form


def test_icc_leaves_out_incomplete_rows():
    x = np.vstack([SHROUT_FLEISS, [[1, np.nan, 3, 4]]])
    assert cont.icc(x)["ICC(2,1)"] == pytest.approx(cont.icc(SHROUT_FLEISS)["ICC(2,1)"])


def test_bland_altman_bias_and_limits():
    a = np.array([10.0, 12.0, 9.0, 11.0, np.nan])
    b = np.array([9.0, 11.5, 9.5, 10.0, 3.0])
    d = (a - b)[:4]
    got = cont.bland_altman(a, b)
    assert got["n"] == 4
    assert got["bias"] == pytest.approx(d.mean())
    assert got["sd"] == pytest.approx(d.std(ddof=1))
    assert got["loa_low"] == pytest.approx(d.mean() - 1.96 * d.std(ddof=1))
    assert got["loa_high"] == pytest.approx(d.mean() + 1.96 * d.std(ddof=1))


def test_within_subject_cv_is_the_rms_of_unit_cvs():
    x = np.array([[10.0, 12.0], [20.0, 20.0], [5.0, np.nan]])
    cv1 = np.std([10, 12], ddof=1) / 11
    assert cont.coefficient_of_variation(x) == pytest.approx(np.sqrt((cv1**2 + 0) / 2))
