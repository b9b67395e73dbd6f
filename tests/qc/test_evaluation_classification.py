"""Classification scoring: AUC against sklearn, DeLong against the O(mn)
definition, Youden's point and the operating threshold by hand, bootstrap
intervals against a loop, case truth and strata."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from qc.evaluation.classification import (
    Z95,
    case_truth,
    delong,
    delong_paired,
    evaluate_classification,
    figures,
    roc_curve,
)
from qc.evaluation.submission import CaseScore
from qc.evaluation.truth import Lesion, Scan, Truth
from qc.matching import Grid


def _psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def _direct_delong(y, scores_list):
    """DeLong 1988 by its definition: structural components as O(mn) loops."""
    y = np.asarray(y, bool)
    k = len(scores_list)
    v10s, v01s, aucs = [], [], []
    for s in scores_list:
        pos = [v for v, t in zip(s, y, strict=True) if t]
        neg = [v for v, t in zip(s, y, strict=True) if not t]
        v10 = [sum(_psi(x, w) for w in neg) / len(neg) for x in pos]
        v01 = [sum(_psi(x, w) for x in pos) / len(pos) for w in neg]
        aucs.append(sum(v10) / len(pos))
        v10s.append(v10)
        v01s.append(v01)
    m, n = len(v10s[0]), len(v01s[0])
    cov = np.zeros((k, k))
    for a in range(k):
        for b in range(k):
            s10 = sum((v10s[a][i] - aucs[a]) * (v10s[b][i] - aucs[b]) for i in range(m)) / (m - 1)
            s01 = sum((v01s[a][j] - aucs[a]) * (v01s[b][j] - aucs[b]) for j in range(n)) / (n - 1)
            cov[a, b] = s10 / m + s01 / n
    return aucs, cov


def _random_case(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 60))
    y = rng.random(n) < rng.uniform(0.2, 0.8)
    y[0], y[1] = True, False
    s1 = np.round(rng.normal(y * rng.uniform(0, 2), 1.0), int(rng.integers(0, 3)))  # ties
    s2 = np.round(s1 + rng.normal(0, 0.7, n), 1)
    return y, s1, s2


@pytest.mark.parametrize("seed", range(25))
def test_auc_matches_sklearn_and_delong_variance_matches_the_definition(seed):
    y, s1, s2 = _random_case(seed)
    auc, var = delong(y, s1)
    assert auc == pytest.approx(roc_auc_score(y, s1), abs=1e-12)
    aucs, cov = _direct_delong(y, [s1, s2])
    assert auc == pytest.approx(aucs[0], abs=1e-12)
    assert var == pytest.approx(cov[0, 0], rel=1e-9, abs=1e-15)
    diff, dvar = delong_paired(y, s1, s2)
    assert diff == pytest.approx(aucs[0] - aucs[1], abs=1e-12)
    assert dvar == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("seed", range(10))
def test_roc_curve_matches_sklearn_without_dropping_points(seed):
    y, s, _ = _random_case(seed)
    curve = roc_curve(y, s)
    fpr, tpr, thr = sk_roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(curve["fpr"], fpr) and np.allclose(curve["tpr"], tpr)
    assert curve["thresholds"][0] is None and np.allclose(curve["thresholds"][1:], thr[1:])


def test_delong_on_a_hand_computed_case():
    # positives 0.9, 0.8, 0.4; negatives 0.7, 0.6, 0.3.
    y = [1, 1, 0, 0, 1, 0]
    s = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3]
    auc, var = delong(y, s)
    # V10 (per positive) = 1, 1, 1/3; V01 (per negative) = 2/3, 2/3, 1; AUC 7/9.
    assert auc == pytest.approx(7 / 9)
    v10 = np.var([1, 1, 1 / 3], ddof=1)
    v01 = np.var([2 / 3, 2 / 3, 1], ddof=1)
    assert var == pytest.approx(v10 / 3 + v01 / 3)
    assert np.isnan(delong([1, 1], [0.2, 0.3])[0])


def test_operating_threshold_and_youden_by_hand():
    y = np.array([1, 1, 0, 0, 1, 0], bool)
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3])
    f = figures(y, s, operating_threshold=0.5, bootstrap=0, seed=0)
    # >= 0.5: positives 0.9, 0.8 called (2/3); negatives below: 0.3 (1/3).
    assert f["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert f["specificity"]["value"] == pytest.approx(1 / 3)
    # J over thresholds 0.9 .. 0.3: 1/3, 2/3, 1/3, 0, 1/3, 0 -> 0.8.
    assert f["youden_threshold"]["value"] == 0.8
    assert f["youden_sensitivity"]["value"] == pytest.approx(2 / 3)
    assert f["youden_specificity"]["value"] == 1.0
    # A score equal to the threshold is called positive.
    at = figures(y, s, operating_threshold=0.4, bootstrap=0, seed=0)
    assert at["sensitivity"]["value"] == 1.0 and at["specificity"]["value"] == pytest.approx(1 / 3)
    # DeLong interval around the AUC.
    auc, var = delong(y, s)
    assert f["auc"]["ci"] == pytest.approx([auc - Z95 * var**0.5, min(1.0, auc + Z95 * var**0.5)])


def test_youden_ties_go_to_the_highest_threshold():
    f = figures(
        np.array([1, 0, 1, 0], bool),
        np.array([0.9, 0.8, 0.7, 0.6]),
        operating_threshold=0.5,
        bootstrap=0,
        seed=0,
    )
    # J at 0.9: 1/2, at 0.8: 0, at 0.7: 1/2, at 0.6: 0.
    assert f["youden_threshold"]["value"] == 0.9
    assert f["youden_sensitivity"]["value"] == 0.5 and f["youden_specificity"]["value"] == 1.0


def test_bootstrap_intervals_match_a_loop_over_the_same_resamples():
    y, s, _ = _random_case(3)
    f = figures(y, s, operating_threshold=0.3, bootstrap=300, seed=11)
    idx = np.random.default_rng(11).integers(0, len(y), size=(300, len(y)))
    aucs, sens, youden = [], [], []
    for row in idx:
        yb, sb = y[row], s[row]
        sens.append(np.mean(sb[yb] >= 0.3) if yb.any() else np.nan)
        if yb.all() or not yb.any():
            continue
        aucs.append(roc_auc_score(yb, sb))
        fpr, tpr, thr = sk_roc_curve(yb, sb, drop_intermediate=False)
        j = tpr[1:] - fpr[1:]
        youden.append(thr[1:][int(np.argmax(j))])
    assert f["auc_bootstrap"]["ci"] == pytest.approx(list(np.percentile(aucs, [2.5, 97.5])))
    sens = np.asarray(sens)
    assert f["sensitivity"]["ci"] == pytest.approx(
        list(np.percentile(sens[~np.isnan(sens)], [2.5, 97.5]))
    )
    assert f["youden_threshold"]["ci"] == pytest.approx(list(np.percentile(youden, [2.5, 97.5])))


def _truth() -> Truth:
    grid = Grid.regular(4, rows=8, columns=8)

    def scan(uid, case, label, site, maker):
        strata = {"site": site, "manufacturer": maker, "slice_thickness": "<=1 mm"}
        return Scan(uid, case, "P" + case, grid, label, strata)

    scans = (
        scan("s1", "A", "positive", "S1", "GE"),
        scan("s1b", "A", "positive", "S2", "UIH"),  # a second series: strata from the first
        scan("s2", "B", "negative", "S1", "GE"),
        scan("s3", "C", "", "S1", "SIEMENS"),  # unlabelled with a lesion: positive
        scan("s4", "D", "", "S2", "GE"),  # unlabelled, only an excluded lesion: negative
        scan("s5", "E", "negative", "S2", "GE"),  # labelled negative despite a lesion
        scan("s6", "F", "", "S2", "GE"),
    )

    def lesion(lid, uid, case, excluded=False):
        return Lesion(lid, uid, case, "nodule", (1.0, 1.0, 1.0), 6.0, excluded=excluded)

    lesions = (
        lesion("l1", "s1", "A"),
        lesion("l2", "s3", "C"),
        lesion("l3", "s4", "D", excluded=True),
        lesion("l4", "s5", "E"),
    )
    return Truth("ds", "1.0.0", "test", "centre_distance", 5.0, 3, scans, lesions)


def test_case_truth_from_labels_and_lesions():
    cases, y = case_truth(_truth())
    assert cases == ["A", "B", "C", "D", "E", "F"]
    assert y.tolist() == [True, False, True, False, False, False]


def test_evaluate_classification_result():
    truth = _truth()
    scores = [
        CaseScore(c, p, i + 2)
        for i, (c, p) in enumerate(zip("ABCDEF", [0.9, 0.2, 0.6, 0.7, 0.1, 0.3], strict=True))
    ]
    r = evaluate_classification(truth, scores, operating_threshold=0.5, bootstrap=200, seed=1)
    # Positives A .9, C .6; negatives B .2, D .7, E .1, F .3: 7 of 8 pairs.
    assert r["figures"]["auc"]["value"] == pytest.approx(7 / 8)
    assert r["figures"]["sensitivity"]["value"] == 1.0
    assert r["figures"]["specificity"]["value"] == 0.75
    assert r["counts"] == {
        "scans": 7,
        "lesions": 3,
        "excluded_lesions": 1,
        "marks": 6,
        "cases": 6,
        "positive_cases": 2,
    }
    assert r["conventions"]["bootstrap"] == {
        "resamples": 200,
        "seed": 1,
        "unit": "case",
        "interval": "percentile 95%",
    }
    assert "case_truth" in r["conventions"]
    roc = r["curves"]["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and roc["thresholds"][1] == 0.9
    # Strata by the case's first series: A is S1/GE, not S2/UIH.
    assert set(r["strata"]["site"]) == {"S1", "S2"}
    assert r["strata"]["site"]["S1"]["scans"] == 4  # A (2 series), B, C
    assert r["strata"]["site"]["S1"]["lesions"] == 2
    assert set(r["strata"]["manufacturer"]) == {"GE", "SIEMENS"}
    s1 = r["strata"]["site"]["S1"]["figures"]
    assert s1["auc"]["value"] == 1.0  # A .9, C .6 against B .2
    s2 = r["strata"]["site"]["S2"]["figures"]
    assert s2["auc"]["value"] is None and s2["sensitivity"]["value"] is None  # no positive
    assert s2["specificity"]["value"] == pytest.approx(2 / 3)  # D .7 called positive
    json.dumps(r, allow_nan=False)  # JSON-ready: no NaN, no numpy types
    again = evaluate_classification(truth, scores, operating_threshold=0.5, bootstrap=200, seed=1)
    assert again == r
    other = evaluate_classification(truth, scores, operating_threshold=0.5, bootstrap=200, seed=2)
    assert other["figures"]["specificity"]["ci"] != r["figures"]["specificity"]["ci"]


def test_every_case_needs_a_score():
    with pytest.raises(ValueError, match="1 case"):
        evaluate_classification(_truth(), dict.fromkeys("ABCDE", 0.5), bootstrap=0)
