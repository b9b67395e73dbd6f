"""qc.consensus: verdicts of the auto-consensus rule and consensus geometry."""

from __future__ import annotations

import numpy as np
import pytest

from qc import consensus
from qc.matching import Grid, Mark, cluster
from qc.raster import SparseMask, rasterise, trace_outline

GRID = Grid.regular(20, spacing=(1.0, 0.5, 0.5))
KINDS = {"nodule": {"nodule_type": "enum", "malignancy": "ordinal", "long_axis_mm": "number"}}


def mark(mid, reader, x, **attrs):
    base = {"nodule_type": "solid", "malignancy": 3}
    return Mark(mid, reader, "nodule", (x, 0.0, 5.0), attributes={**base, **attrs})


def rule(**kw):
    return consensus.ConsensusRule(
        readers=3, accept_min_readers=3, drop_below_readers=2, attribute_kinds=KINDS, **kw
    )


def verdicts(marks, r):
    return [
        (len(v.cluster.marks), v.verdict, [x["code"] for x in v.reasons])
        for v in consensus.evaluate(cluster(marks, "centre_distance", 5.0), r)
    ]


def test_accept_drop_dispute():
    agree = [mark("a", "A", 0), mark("b", "B", 1, malignancy=4), mark("c", "C", 2)]
    assert verdicts(agree, rule()) == [(3, "accept", [])]
    two = [mark("a", "A", 0), mark("b", "B", 1)]
    assert verdicts(two, rule()) == [(2, "dispute", ["existence"])]
    one = [mark("a", "A", 0)]
    assert verdicts(one, rule()) == [(1, "drop", ["too_few_readers"])]
    assert verdicts(agree, rule(size_tolerance_mm=None).__class__(readers=3)) == [
        (3, "dispute", ["existence"])  # no auto-accept configured
    ]


def test_attribute_and_size_reasons():
    types = [mark("a", "A", 0), mark("b", "B", 1, nodule_type="part_solid"), mark("c", "C", 2)]
    assert verdicts(types, rule()) == [(3, "dispute", ["attribute"])]
    assert verdicts(types, rule(same_type=False)) == [(3, "accept", [])]
    scores = [mark("a", "A", 0, malignancy=1), mark("b", "B", 1), mark("c", "C", 2)]
    assert verdicts(scores, rule()) == [(3, "dispute", ["attribute"])]
    assert verdicts(scores, rule(ordinal_tolerance=2)) == [(3, "accept", [])]
    sizes = [
        mark("a", "A", 0, long_axis_mm=4),
        mark("b", "B", 1, long_axis_mm=9),
        mark("c", "C", 2, long_axis_mm=5),
    ]
    assert verdicts(sizes, rule(size_tolerance_mm=3.0)) == [(3, "dispute", ["size"])]
    assert verdicts(sizes, rule(size_tolerance_mm=6.0)) == [(3, "accept", [])]


def test_a_different_type_at_the_same_place_is_a_type_dispute():
    marks = [mark("a", "A", 0), mark("b", "B", 1), Mark("c", "C", "mass", (0.5, 0, 5.0))]
    found = consensus.evaluate(cluster(marks, "centre_distance", 5.0), rule())
    codes = {v.cluster.finding_type: [r["code"] for r in v.reasons] for v in found}
    assert "type" in codes["nodule"]


def test_case_label_disagreements():
    labels = {
        "1": {"q": 3, "present": True, "note": "x"},
        "2": {"q": 2, "present": True, "note": "y"},
    }
    kinds = {"q": "ordinal", "present": "boolean", "note": "text"}
    assert [d["key"] for d in consensus.label_disagreements(labels, kinds)] == ["q"]


def _square(r0, c0, n, slices=(3,)):
    return rasterise("box", [(s, ((c0, r0), (c0 + n - 1, r0 + n - 1))) for s in slices])


def test_majority_vote_on_known_masks():
    a, b, c = _square(0, 0, 10), _square(0, 0, 10), _square(0, 0, 20)
    vote = consensus.combine_masks([a, b, c], "majority")
    assert vote.voxels == 100  # only the 10x10 square is marked by 2 of 3
    # a voxel marked by exactly half of four raters is not a majority
    even = consensus.combine_masks([a, b, c, _square(0, 0, 20)], "majority")
    assert even.voxels == 100  # 10x10 by all four; the rest by only two of four


def test_staple_agrees_with_majority_when_raters_agree_and_drops_an_outlier():
    a = _square(0, 0, 10)
    same = consensus.combine_masks([a, a, a], "staple")
    assert same.voxels == 100
    outlier = _square(30, 30, 10)
    combined = consensus.combine_masks([a, a, a, outlier], "staple")
    assert combined.voxels == 100
    assert combined.intersection(a) == 100


def test_trace_outline_round_trips_to_the_same_mask():
    rng = np.random.default_rng(7)
    from scipy import ndimage

    for _ in range(50):
        plane = ndimage.binary_closing(rng.random((15, 15)) < 0.6)
        if not plane.any():
            continue
        labels, n = ndimage.label(plane)
        sizes = ndimage.sum_labels(plane, labels, range(1, n + 1))
        region = ndimage.binary_fill_holes(labels == np.argmax(sizes) + 1)
        back = rasterise("polygon", [(0, tuple(trace_outline(plane)))])
        placed = back.placed((0, 0, 0), (1, 15, 15))[0]
        assert (placed == region).all()


def test_consensus_geometry_of_three_contours():
    shapes = lambda c0: tuple((s, ((c0, 10), (c0 + 11, 21))) for s in (4, 5))  # noqa: E731
    marks = [
        Mark(str(i), str(i), "nodule", None, "ellipse", shapes(c))
        for i, c in enumerate((10, 12, 14))
    ]
    geo = consensus.consensus_geometry(marks, GRID, "majority")
    assert geo.kind == "contour" and geo.method == "majority" and geo.members == 3
    assert [s for s, _ in geo.shapes] == [4, 5]
    # the middle reader's ellipse centre (col 17.5, row 15.5, slice 4.5)
    assert geo.centre_mm == pytest.approx(GRID.to_patient(4.5, 17.5, 15.5), abs=0.3)
    assert 5.0 <= geo.diameter_mm <= 6.5  # about 11 pixels of 0.5 mm
    back = rasterise("contour", geo.shapes)
    assert isinstance(back, SparseMask) and back.voxels == geo.voxels
    points = consensus.consensus_geometry(
        [Mark("p", "A", "nodule", (0.0, 0.0, 4.0)), Mark("q", "B", "nodule", (2.0, 0.0, 4.0))], GRID
    )
    assert points.kind == "point" and points.centre_mm == pytest.approx((1.0, 0.0, 4.0))
