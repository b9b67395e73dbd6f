"""qc.agreement.categorical against the reference implementations (krippendorff,
scikit-learn, statsmodels; irrCAC numbers) and published worked examples."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from qc.agreement import categorical as cat
from qc.agreement.stats import bootstrap_weights

nan = np.nan

# Fleiss (1971): 30 patients, 6 psychiatrists, 5 diagnoses (R irr's `diagnoses`).
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ],
    dtype=float,
)  # fmt: skip

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability": 4 coders x 12 units.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
).T  # units x coders


def random_ratings(seed=1, units=200, raters=4, q=5, missing=0.2):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, q, units)
    r = np.clip(truth[:, None] + rng.integers(-1, 2, (units, raters)), 0, q - 1).astype(float)
    r[rng.random(r.shape) < missing] = nan
    return r


def test_fleiss_1971_kappa_and_its_standard_error():
    kappa, se = cat.fleiss_kappa(FLEISS_1971)
    assert kappa == pytest.approx(0.4302445, abs=1e-7)  # Fleiss 1971; R irr::kappam.fleiss
    assert kappa / se == pytest.approx(17.65183, abs=1e-5)  # irr's z
    assert kappa == pytest.approx(fleiss_kappa(aggregate_raters(FLEISS_1971)[0]), abs=1e-12)


@pytest.mark.parametrize(
    ("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_krippendorff_2011_worked_example(level, published):
    ours = cat.krippendorff_alpha(KRIPPENDORFF_2011, level)
    assert ours == pytest.approx(published, abs=5e-4)
    reference = krippendorff.alpha(reliability_data=KRIPPENDORFF_2011.T, level_of_measurement=level)
    assert ours == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_alpha_matches_the_krippendorff_package_with_missing_ratings(level, seed):
    r = random_ratings(seed)
    reference = krippendorff.alpha(reliability_data=r.T, level_of_measurement=level)
    assert cat.krippendorff_alpha(r, level) == pytest.approx(reference, abs=1e-9)


def test_interval_alpha_on_continuous_values_matches_the_package():
    rng = np.random.default_rng(5)
    x = rng.normal(10, 3, (150, 1)) + rng.normal(0, 1, (150, 3))
    x[rng.random(x.shape) < 0.15] = nan
    reference = krippendorff.alpha(reliability_data=x.T, level_of_measurement="interval")
    assert cat.krippendorff_alpha(x, "interval") == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_scikit_learn(weights):
    rng = np.random.default_rng(11)
    a = rng.integers(0, 5, 300)
    b = np.clip(a + rng.integers(-1, 2, 300), 0, 4)
    ours = cat.cohen_kappa(a, b, weights)
    assert ours == pytest.approx(cohen_kappa_score(a, b, weights=weights), abs=1e-9)


def test_cohen_kappa_ignores_units_a_reader_did_not_rate():
    a = np.array([1, 2, 3, nan, 1, 2])
    b = np.array([1, 2, 2, 3, nan, 2])
    both = np.isfinite(a) & np.isfinite(b)
    expected = cohen_kappa_score(a[both].astype(int), b[both].astype(int))
    assert cat.cohen_kappa(a, b) == pytest.approx(expected, abs=1e-12)


# irrCAC 0.4.4 (CAC(..., categories=[1..5], digits=15)), computed once in a
# separate environment: irrCAC pins numpy/pandas versions the project cannot take.
IRRCAC = {
    ("diag", None): (0.447884515844564, 0.430244520060141),
    ("diag", "linear"): (0.385473613745397, None),
    ("diag", "quadratic"): (0.380228300667672, None),
    ("kd", None): (0.775444068126995, 0.761169275422411),
    ("kd", "linear"): (0.858739136432611, None),
    ("kd", "quadratic"): (0.914000723551605, None),
}


@pytest.mark.parametrize(("data", "weights"), list(IRRCAC))
def test_gwet_and_fleiss_match_irrcac(data, weights):
    ratings = FLEISS_1971 if data == "diag" else KRIPPENDORFF_2011
    gwet, fleiss = IRRCAC[(data, weights)]
    cats = [1, 2, 3, 4, 5]
    assert cat.gwet_ac(ratings, weights, categories=cats) == pytest.approx(gwet, abs=1e-9)
    if fleiss is not None:
        got = cat.fleiss_kappa_additive(ratings, categories=cats).value()
        assert got == pytest.approx(fleiss, abs=1e-9)


def test_ac1_stays_high_where_kappa_collapses_on_a_dominant_category():
    # 95 of 100 units "no nodule" by both readers; they disagree on the rest.
    a = np.array([0] * 95 + [1, 0, 1, 0, 1], dtype=float)
    b = np.array([0] * 95 + [0, 1, 1, 0, 0], dtype=float)
    r = np.column_stack([a, b])
    assert cat.percent_agreement(r) == pytest.approx(0.97)
    assert cat.cohen_kappa(a, b) < 0.5
    assert cat.gwet_ac(r) > 0.9


def test_percent_agreement_counts_agreeing_pairs():
    r = np.array([[1, 1, 1], [1, 1, 2], [1, 2, nan], [3, nan, nan]], dtype=float)
    # unit 1: 3/3 pairs, unit 2: 1/3, unit 3: 0/1; unit 4 has one rating only
    assert cat.percent_agreement(r) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_bootstrap_is_seeded_and_resamples_whole_cases():
    w1 = bootstrap_weights(50, 200, seed=3)
    w2 = bootstrap_weights(50, 200, seed=3)
    assert np.array_equal(w1, w2)
    assert not np.array_equal(w1, bootstrap_weights(50, 200, seed=4))
    assert np.all(w1.sum(axis=1) == 50)
    strata = ["a"] * 10 + ["b"] * 40
    ws = bootstrap_weights(50, 100, seed=3, strata=strata)
    assert np.all(ws[:, :10].sum(axis=1) == 10) and np.all(ws[:, 10:].sum(axis=1) == 40)


def test_bootstrap_replicate_equals_the_coefficient_of_the_resampled_cases():
    r = random_ratings(7, units=60)
    additive = cat.krippendorff_alpha_additive(r, "ordinal")
    w = bootstrap_weights(60, 5, seed=1)
    reps = additive.replicates(w)
    for k in range(5):
        resampled = np.repeat(r, w[k].astype(int), axis=0)
        expected = krippendorff.alpha(reliability_data=resampled.T, level_of_measurement="ordinal")
        assert reps[k] == pytest.approx(expected, abs=1e-9)
