"""qc.scoring: sensitivity, false positives per case, attribute kappa."""

from __future__ import annotations

import pytest

from qc.matching import Mark
from qc.scoring import CaseRead, cohen_kappa, score_qualification


def m(mid, x, reader="R", **attrs):
    return Mark(mid, reader, "nodule", (x, 0.0, 0.0), attributes=attrs)


def test_sensitivity_fp_per_case_and_misses():
    cases = [
        CaseRead("c1", [m("r1", 0), m("r2", 50)], [m("x1", 1), m("x2", 100)]),
        CaseRead("c2", [m("r3", 0)], [m("x3", 0.5)]),
        CaseRead("c3", [], [m("x4", 0), m("x5", 9)]),
    ]
    score = score_qualification(cases, "centre_distance", 5.0)
    assert score.sensitivity == pytest.approx(2 / 3)
    assert score.fp_per_case == pytest.approx(3 / 3)
    assert [(c, i) for c, i, _, _ in score.misses] == [("c1", "r2")]
    assert sorted(i for _, i, _ in score.false_positives) == ["x2", "x4", "x5"]
    data = score.as_dict()
    assert data["misses"][0]["reference_id"] == "r2" and data["rule"] == "centre_distance"


def test_kappa_of_an_attribute_over_matched_pairs():
    ref = [
        m(f"r{i}", 20 * i, nodule_type=t) for i, t in enumerate(["solid", "solid", "part", "part"])
    ]
    read = [
        m(f"x{i}", 20 * i, nodule_type=t) for i, t in enumerate(["solid", "part", "part", "part"])
    ]
    score = score_qualification([CaseRead("c", ref, read)], "centre_distance", 5.0, ["nodule_type"])
    # po = 3/4, pe = 1/2 * 1/4 + 1/2 * 3/4 = 1/2, kappa = (0.75 - 0.5) / 0.5
    assert score.kappa["nodule_type"] == pytest.approx(0.5)
    assert score.kappa_mean == pytest.approx(0.5)


def test_kappa_undefined_is_none():
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None
    assert cohen_kappa(["a"], ["b"]) is None
    assert cohen_kappa(["a", None, "b"], ["a", "b", "b"]) == pytest.approx(1.0)


def test_weighted_kappa_for_ordinals():
    a, b = [1, 2, 3, 4, 5], [1, 2, 3, 5, 4]
    assert cohen_kappa(a, b, "quadratic") > cohen_kappa(a, b) > 0
