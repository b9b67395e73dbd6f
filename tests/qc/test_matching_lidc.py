"""The pylidc match rule (pylidc's Scan.cluster_annotations) on hand-made
geometries whose clustering is known, including the ×0.9 tightening."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from qc.matching import (
    PYLIDC_MIN_TOL,
    Grid,
    Mark,
    cluster,
    contour_points,
    match_pairs,
    min_contour_distance,
    pylidc_start_tolerance,
    similarity,
)

# 30 axial slices 2.5 mm apart and 2.5 mm thick, 0.7 mm pixels.
GRID = Grid.regular(30, spacing=(2.5, 0.7, 0.7), slice_thickness=2.5)


def square(mid, reader, c0, r0, c1, r1, slices=(10,), finding_type="nodule"):
    """A contour drawn as a closed square (four corner points) on each slice."""
    shape = ((c0, r0), (c1, r0), (c1, r1), (c0, r1))
    centre = GRID.to_patient(sum(slices) / len(slices), (c0 + c1) / 2, (r0 + r1) / 2)
    return Mark(mid, reader, finding_type, centre, "contour", tuple((s, shape) for s in slices))


def small(mid, reader, col, row, slice_index=10):
    """A single-point small nodule (LIDC's < 3 mm nodule): no shapes, a centre."""
    return Mark(mid, reader, "nodule", GRID.to_patient(slice_index, col, row), "point")


def groups(clusters):
    return sorted(sorted(m.id for m in c.marks) for c in clusters)


def test_min_distance_is_between_outline_points_in_voxel_indices():
    a = square("a", "A", 10, 10, 20, 20)
    b = square("b", "B", 22, 10, 30, 20)  # 2 columns to the right
    c = square("c", "C", 10, 10, 20, 20, slices=(11,))  # one slice up
    assert min_contour_distance(a, b, GRID) == pytest.approx(2.0)
    assert min_contour_distance(a, c, GRID) == pytest.approx(1.0)  # 1 slice, not 2.5 mm
    p = small("p", "D", 23.0, 15.0)
    assert contour_points(p, GRID)[0].tolist() == pytest.approx([23.0, 15.0, 10.0])
    assert min_contour_distance(a, p, GRID) == pytest.approx(math.hypot(3, 5))
    assert min_contour_distance(a, Mark("x", "E", "nodule", None), GRID) == math.inf


def test_the_tolerance_starts_at_the_slice_thickness():
    assert pylidc_start_tolerance(GRID, 99.0) == 2.5
    thin = Grid.regular(10, spacing=(2.5, 0.7, 0.7), slice_thickness=1.25)
    assert pylidc_start_tolerance(thin, 99.0) == 1.25
    unknown = Grid.regular(10, spacing=(2.0, 0.7, 0.7))
    assert pylidc_start_tolerance(unknown, 99.0) == 2.0  # the slice spacing
    assert pylidc_start_tolerance(Grid.regular(1), 3.0) == 3.0  # one slice: the threshold
    # The protocol's threshold does not move the tolerance when the thickness is known.
    marks = [square("a", "A", 10, 10, 20, 20), square("b", "B", 22, 10, 30, 20)]
    out = cluster(marks, "pylidc", 0.5, GRID)
    assert groups(out) == [["a", "b"]]
    assert out[0].threshold == out[0].threshold_used == 2.5 and not out[0].tightened
    thin_out = cluster(marks, "pylidc", 50.0, thin)
    assert groups(thin_out) == [["a"], ["b"]]  # 2 voxels apart > 1.25


def test_three_readers_touching_form_one_cluster_and_a_far_mark_stays_apart():
    marks = [
        square("a", "A", 10, 10, 20, 20, slices=(9, 10, 11)),
        square("b", "B", 22, 10, 30, 20),  # 2 voxels from a
        square("c", "C", 10, 10, 20, 20, slices=(12,)),  # 1 slice from a
        square("d", "D", 100, 100, 110, 110),
        small("e", "B", 110.0, 112.0),  # B's small nodule, 2 rows under a corner of d
    ]
    out = cluster(marks, "pylidc", 5.0, GRID)
    assert groups(out) == [["a", "b", "c"], ["d", "e"]]
    assert all(c.rule == "pylidc" and not c.tightened for c in out)


def test_marks_of_one_reader_chaining_a_group_are_split_by_tightening():
    # A drew two contours; B's sits between them: A1 -2.0- B -2.4- A2.
    marks = [
        square("a1", "A", 0, 0, 10, 10),
        square("b", "B", 12, 0, 20, 10),
        square("a2", "A", 22.4, 0, 30, 10),
        # An unrelated pair 2.0 apart: the tighter tolerance still joins it.
        square("c", "C", 100, 100, 110, 110),
        square("d", "D", 112, 100, 120, 110),
    ]
    out = cluster(marks, "pylidc", 5.0, GRID)
    assert groups(out) == [["a1", "b"], ["a2"], ["c", "d"]]
    by_key = {c.key: c for c in out}
    assert by_key["a1|b"].threshold == 2.5
    assert by_key["a1|b"].threshold_used == pytest.approx(2.25)  # one step of ×0.9
    assert by_key["a1|b"].tightened and by_key["a2"].tightened
    assert by_key["a1|b"].tightened_on == "min_contour_distance_voxels"
    assert not by_key["c|d"].tightened  # formed at the starting tolerance already
    for c in out:
        assert len(set(c.readers)) == len(c.readers)


def test_tightening_repeats_and_is_global_within_a_finding_type_as_in_pylidc():
    # A1 -2.2- B -2.1- A2: 2.25 still joins all three, 2.025 splits B from both.
    marks = [
        square("a1", "A", 0, 0, 10, 10),
        square("b", "B", 12.2, 0, 20, 10),
        square("a2", "A", 22.1, 0, 30, 10),
        # Two readers 2.2 apart, no conflict: pylidc's global tightening splits them too.
        square("c", "C", 100, 100, 110, 110),
        square("d", "D", 112.2, 100, 120, 110),
        # Another finding type is clustered on its own, at the starting tolerance.
        square("m1", "A", 100, 100, 110, 110, finding_type="mass"),
        square("m2", "B", 112.2, 100, 120, 110, finding_type="mass"),
    ]
    out = cluster(marks, "pylidc", 5.0, GRID)
    assert groups(out) == [["a1"], ["a2"], ["b"], ["c"], ["d"], ["m1", "m2"]]
    nodules = [c for c in out if c.finding_type == "nodule"]
    assert {round(c.threshold_used, 6) for c in nodules} == {round(2.5 * 0.9 * 0.9, 6)}
    mass = next(c for c in out if c.finding_type == "mass")
    assert mass.threshold_used == 2.5 and not mass.tightened


def test_one_reader_marking_one_place_twice_is_split_at_the_floor():
    # A's two marks coincide (distance 0): no tolerance separates them, so pylidc
    # would give up; we cut links until A appears once per cluster.
    marks = [
        square("a1", "A", 0, 0, 10, 10),
        square("a2", "A", 0, 0, 10, 10),
        square("b", "B", 11, 0, 20, 10),
    ]
    out = cluster(marks, "pylidc", 5.0, GRID)
    for c in out:
        assert len(set(c.readers)) == len(c.readers)
    assert sorted(m.id for c in out for m in c.marks) == ["a1", "a2", "b"]
    assert all(c.tightened and c.threshold_used < 2.5 for c in out)
    assert min(c.threshold_used for c in out) >= PYLIDC_MIN_TOL * 0.9


def test_similarity_and_match_pairs_use_the_starting_tolerance():
    ref = [square("r1", "ref", 10, 10, 20, 20), square("r2", "ref", 60, 60, 70, 70)]
    cand = [square("c1", "X", 22, 10, 30, 20), square("c2", "X", 60, 73, 70, 80)]
    assert similarity(ref[0], cand[0], "pylidc", 1.0, GRID)
    assert not similarity(ref[1], cand[1], "pylidc", 1.0, GRID)  # 3 voxels apart
    m = match_pairs(ref, cand, "pylidc", 1.0, GRID)
    assert [(r.id, c.id) for r, c in m.pairs] == [("r1", "c1")]
    assert [r.id for r in m.missed] == ["r2"] and [c.id for c in m.false_positives] == ["c2"]


def test_the_rule_needs_the_grid():
    with pytest.raises(ValueError):
        cluster([square("a", "A", 0, 0, 1, 1)], "pylidc", 2.5)


def _reference_pylidc(marks, grid, start):
    """pylidc's loop, written out: distance matrix, adjacency D <= tol, connected
    components, ×0.9 until no group holds one reader twice (or below 0.1)."""
    n = len(marks)
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = min_contour_distance(marks[i], marks[j], grid)
    tol = start

    def labels(t):
        return connected_components(d <= t, directed=False)[1]

    def conflicted(cids):
        for cid in np.unique(cids):
            readers = [marks[i].reader for i in np.flatnonzero(cids == cid)]
            if len(set(readers)) != len(readers):
                return True
        return False

    cids = labels(tol)
    while conflicted(cids):
        if tol * 0.9 < 0.1:
            break
        tol *= 0.9
        cids = labels(tol)
    found = {}
    for i, cid in enumerate(cids):
        found.setdefault(cid, []).append(marks[i].id)
    return sorted(sorted(g) for g in found.values()), tol, conflicted(cids)


def test_matches_a_direct_transcription_of_pylidc_on_random_scenes():
    compared = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        marks = []
        lesions = rng.uniform(20, 200, size=(6, 3)) * [1, 1, 0.1]
        for reader in "ABCD":
            for k, (col, row, s) in enumerate(lesions):
                if rng.random() < 0.3:
                    continue  # this reader missed the lesion
                jitter = rng.normal(0, 2.0, 2)
                size = rng.uniform(3, 8)
                c0, r0 = col + jitter[0], row + jitter[1]
                marks.append(
                    square(f"{reader}{k}", reader, c0, r0, c0 + size, r0 + size, slices=(int(s),))
                )
        expected, tol, unresolved = _reference_pylidc(marks, GRID, 2.5)
        out = cluster(marks, "pylidc", 5.0, GRID)
        assert all(len(set(c.readers)) == len(c.readers) for c in out)
        if unresolved:
            continue  # pylidc leaves these to be grouped by hand
        assert groups(out) == expected, seed
        assert {round(c.threshold_used, 9) for c in out} == {round(tol, 9)}
        compared += 1
    assert compared >= 30
