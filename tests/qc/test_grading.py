"""qc.grading: when readers' ordinal grades disagree under the protocol's rule."""

from __future__ import annotations

import pytest

from qc.grading import GradeRule, agreed_grade, grade_dispute

N1 = GradeRule("difference", 1)
N2 = GradeRule("difference", 2)
REF = GradeRule("referable")


@pytest.mark.parametrize(
    ("values", "rule", "expected"),
    [
        ((1, 2), N1, "difference"),
        ((1, 2), N2, None),
        ((0, 2), N2, "difference"),
        ((2, 2, 2), N1, None),
        ((1, 2), REF, "referable"),
        ((0, 1), REF, None),
        ((2, 4), REF, None),
        (("ungradable", 2), N2, "outside_scale"),
        (("ungradable", 2), REF, "outside_scale"),
        (("ungradable", "ungradable"), N1, None),
        ((None, 2), N2, "missing"),
        ((None, None), N1, None),
    ],
)
def test_grade_dispute(values, rule, expected):
    answers = {f"r{i}": v for i, v in enumerate(values)}
    assert grade_dispute(answers, rule, referable_from=2) == expected


def test_referable_rule_without_a_threshold_falls_back_to_the_difference():
    assert grade_dispute({"a": 0, "b": 1}, REF, referable_from=None) == "difference"


def test_agreed_grade_is_the_upper_median():
    assert agreed_grade({"a": 1, "b": 2}) == 2
    assert agreed_grade({"a": 0, "b": 1, "c": 3}) == 1
    assert agreed_grade({"a": "ungradable", "b": "ungradable"}) == "ungradable"


def test_a_rule_needs_a_known_name_and_a_positive_difference():
    with pytest.raises(ValueError):
        GradeRule("median")
    with pytest.raises(ValueError):
        GradeRule("difference", 0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("absent", "absent", "absent"), None),
        (("ungradable", "ungradable"), None),
        (("absent", "present"), "difference"),
        (("ungradable", "present"), "outside_scale"),
        (("ungradable", "absent", "absent"), "outside_scale"),
        (("ungradable", "blurred"), "outside_scale"),
        ((None, "present"), "missing"),
        (("", "ungradable"), "missing"),
        ((None, None), None),
    ],
)
def test_macular_oedema_category_dispute(values, expected):
    from qc.grading import category_dispute

    answers = {f"r{i}": v for i, v in enumerate(values)}
    assert category_dispute(answers, {"ungradable", "blurred"}) == expected
