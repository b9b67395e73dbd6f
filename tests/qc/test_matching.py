"""qc.matching on constructed cases with known answers."""

from __future__ import annotations

import math

import pytest

from qc.matching import RULES, Grid, Mark, cluster, match_pairs, similarity

GRID = Grid.regular(30, spacing=(1.0, 0.5, 0.5))  # z = slice index mm, 0.5 mm pixels


def point(mid, reader, x, y=0.0, z=10.0, finding_type="nodule"):
    return Mark(mid, reader, finding_type, (x, y, z))


def box(mid, reader, c0, r0, c1, r1, slices=(10,)):
    centre = GRID.to_patient(sum(slices) / len(slices), (c0 + c1) / 2, (r0 + r1) / 2)
    shapes = tuple((s, ((c0, r0), (c1, r1))) for s in slices)
    return Mark(mid, reader, "nodule", centre, "box", shapes)


def test_grid_round_trip_on_an_oblique_series():
    grid = Grid(
        positions=tuple((10.0 + 0.1 * i, -5.0, 2.5 * i) for i in range(5)),
        row_cosine=(math.cos(0.3), math.sin(0.3), 0.0),
        column_cosine=(-math.sin(0.3), math.cos(0.3), 0.0),
        pixel_spacing=(0.8, 0.6),
    )
    p = grid.to_patient(2.5, 40.0, 17.0)
    s, col, row = grid.to_index(*p)
    assert (s, col, row) == pytest.approx((2.5, 40.0, 17.0))
    assert grid.to_patient(0, 0, 0) == pytest.approx((10.0, -5.0, 0.0))
    assert grid.to_patient(0, 1, 0) == pytest.approx(
        (10 + 0.6 * math.cos(0.3), -5 + 0.6 * math.sin(0.3), 0)
    )


def test_three_readers_inside_the_threshold_form_one_cluster_outside_one_apart():
    marks = [point("a", "A", 0.0), point("b", "B", 3.0), point("c", "C", 0.0, 4.0)]
    (only,) = cluster(marks, "centre_distance", 5.0)
    assert sorted(only.readers) == ["A", "B", "C"]
    assert (only.rule, only.threshold, only.threshold_used, only.tightened) == (
        "centre_distance",
        5.0,
        5.0,
        False,
    )
    assert only.centre_mm == pytest.approx((1.0, 4 / 3, 10.0))
    far = [point("a", "A", 0.0), point("b", "B", 3.0), point("c", "C", 0.0, 5.5)]
    found = sorted(sorted(c.readers) for c in cluster(far, "centre_distance", 5.0))
    assert found == [["A", "B"], ["C"]]


def test_two_nodules_near_each_other_stay_apart():
    marks = []
    for reader, jitter in (("A", 0.0), ("B", 0.6), ("C", -0.5)):
        marks.append(point(f"{reader}1", reader, 0.0 + jitter))
        marks.append(point(f"{reader}2", reader, 8.0 + jitter))
    clusters = cluster(marks, "centre_distance", 5.0)
    assert [sorted(m.id for m in c.marks) for c in clusters] == [
        ["A1", "B1", "C1"],
        ["A2", "B2", "C2"],
    ]


def test_one_reader_with_two_marks_near_one_lesion_is_tightened():
    marks = [
        point("a1", "A", 0.0),
        point("a2", "A", 3.5),  # A marked the lesion twice
        point("b", "B", 0.5),
        point("c", "C", 0.0, 0.4),
    ]
    clusters = cluster(marks, "centre_distance", 5.0)
    for c in clusters:
        assert len(set(c.readers)) == len(c.readers)  # never two marks of one read
    main = next(c for c in clusters if len(c.marks) == 3)
    assert sorted(m.id for m in main.marks) == ["a1", "b", "c"]
    assert main.tightened and main.tightened_on == "centre_distance_mm"
    assert main.threshold == 5.0 and main.threshold_used < 5.0
    # the weakest links went first: a2-c (3.52 mm), then a2-b (3.0 mm)
    assert main.threshold_used == pytest.approx(3.0)
    assert all(
        math.dist(x.centre_mm, y.centre_mm) < main.threshold_used
        for x in main.marks
        for y in main.marks
    )
    (alone,) = [c for c in clusters if c is not main]
    assert [m.id for m in alone.marks] == ["a2"]


def test_different_finding_types_never_share_a_cluster():
    marks = [point("a", "A", 0.0), point("b", "B", 0.0, finding_type="mass")]
    assert sorted(c.finding_type for c in cluster(marks, "centre_distance", 5.0)) == [
        "mass",
        "nodule",
    ]


def test_centre_in_contour_matches_far_centres_inside_a_big_contour():
    big = box("big", "A", 0, 0, 40, 40)  # 20 mm square, centre at (10, 10) mm
    small = Mark("small", "B", "nodule", GRID.to_patient(10, 35, 35))  # 8.5 mm away, inside
    assert math.dist(big.centre_mm, small.centre_mm) > 5.0
    assert similarity(big, small, "centre_in_contour", 0.0, GRID)
    assert not similarity(big, small, "centre_distance", 5.0)
    assert similarity(big, small, "distance_or_inside", 5.0, GRID)
    outside = Mark("out", "B", "nodule", GRID.to_patient(10, 45, 20))
    assert not similarity(big, outside, "centre_in_contour", 0.0, GRID)
    # on another slice: the centre's nearest slice has no shape of `big`
    other_slice = Mark("z", "B", "nodule", GRID.to_patient(14, 20, 20))
    assert not similarity(big, other_slice, "centre_in_contour", 0.0, GRID)


def test_points_contain_nothing():
    a = point("a", "A", 5.0, 5.0)
    b = point("b", "B", 5.0, 5.0)
    assert not similarity(a, b, "centre_in_contour", 0.0, GRID)
    assert similarity(a, b, "centre_distance", 1.0)


def test_dice_and_iou_on_known_overlaps():
    # 10x10 pixel centres each, shifted by 5 columns: intersection 50 of 100 + 100.
    a = box("a", "A", 0, 0, 9, 9)
    b = box("b", "B", 5, 0, 14, 9)
    assert similarity(a, b, "overlap_dice", 0.5, GRID)  # Dice = 100/200
    assert not similarity(a, b, "overlap_dice", 0.51, GRID)
    assert similarity(a, b, "overlap_iou", 0.33, GRID)  # IoU = 50/150
    assert not similarity(a, b, "overlap_iou", 0.34, GRID)
    # in 3D: the same squares on two slices, one of which only b has
    a3 = box("a", "A", 0, 0, 9, 9, slices=(10,))
    b3 = box("b", "B", 0, 0, 9, 9, slices=(10, 11))
    assert similarity(a3, b3, "overlap_dice", 2 * 100 / 300, GRID)
    assert not similarity(a3, b3, "overlap_dice", 2 * 100 / 300 + 0.01, GRID)


def test_overlap_rules_cluster_and_tighten_by_overlap():
    marks = [box("a", "A", 0, 0, 9, 9), box("b", "B", 1, 0, 10, 9), box("a2", "A", 4, 0, 13, 9)]
    clusters = cluster(marks, "overlap_iou", 0.2, GRID)
    main = next(c for c in clusters if len(c.marks) == 2)
    assert sorted(m.id for m in main.marks) == ["a", "b"]  # IoU 0.82 beats 0.54
    assert main.tightened and main.tightened_on == "overlap"
    assert main.threshold_used > 0.2


def test_match_pairs_is_optimal_not_greedy():
    ref = [point("r1", "ref", 0.0), point("r2", "ref", 6.0)]
    cand = [point("c1", "X", 3.0), point("c2", "X", -4.0)]
    m = match_pairs(ref, cand, "centre_distance", 5.0)
    assert sorted((r.id, c.id) for r, c in m.pairs) == [("r1", "c2"), ("r2", "c1")]
    assert m.missed == () and m.false_positives == ()
    m = match_pairs(ref, [point("c", "X", 20.0)], "centre_distance", 5.0)
    assert [r.id for r in m.missed] == ["r1", "r2"] and [c.id for c in m.false_positives] == ["c"]


def test_the_rule_changes_the_answer_and_is_recorded():
    ref = [box("r", "ref", 0, 0, 40, 40)]
    cand = [Mark("c", "X", "nodule", GRID.to_patient(10, 35, 35))]
    assert len(match_pairs(ref, cand, "centre_in_contour", 0, GRID).pairs) == 1
    loose = match_pairs(ref, cand, "centre_distance", 5.0)
    assert len(loose.pairs) == 0 and loose.rule == "centre_distance" and loose.threshold == 5.0


def test_bad_rules_and_missing_grids_are_refused():
    marks = [point("a", "A", 0.0)]
    with pytest.raises(ValueError):
        cluster(marks, "nearest", 5.0)
    for rule in RULES[1:]:
        with pytest.raises(ValueError):
            cluster(marks, rule, 0.5)
