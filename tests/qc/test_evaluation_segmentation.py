"""Segmentation scoring: matching, per-lesion measures by hand on anisotropic
voxels, excluded lesions, aggregation, bootstrap against a loop, strata, and a
DICOM SEG round trip on synthetic CT."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.volume import finding_mask
from qc.agreement import shapes
from qc.evaluation.segmentation import evaluate_segmentation, match_scan, reference_mask
from qc.evaluation.submission import SegLesion, parse_segmentations
from qc.evaluation.truth import Lesion, Scan, Truth
from qc.matching import Grid
from qc.raster import SparseMask
from tests.qc import evaluation_seg_fixtures as fx

# Slices 2 mm apart, rows 1 mm, columns 0.5 mm.
GRID = Grid.regular(12, spacing=(2.0, 1.0, 0.5), rows=30, columns=30)


def _scan(uid: str, site: str = "S1") -> Scan:
    strata = {"site": site, "manufacturer": "GE", "slice_thickness": "1-2.5 mm"}
    return Scan(uid, "C" + uid, "P" + uid, GRID, "", strata)


def _box_geometry(slices, c0, r0, c1, r1) -> dict:
    """A box outline on each slice: voxel centres c0..c1, r0..r1 inside."""
    return {
        "kind": "box",
        "shapes": [{"slice_index": s, "points": [[c0, r0], [c1, r1]]} for s in slices],
    }


def _lesion(lid, uid, geometry, *, excluded=False, centre=None, size="4-6 mm") -> Lesion:
    return Lesion(
        lid,
        uid,
        "C" + uid,
        "nodule",
        centre,
        5.0,
        geometry,
        excluded=excluded,
        strata={"finding_type": "nodule", "size": size, "agreement": "all readers"},
    )


def _pred(uid, lo, hi, label="p", number=1, probability=None) -> SegLesion:
    shape = tuple(b - a for a, b in zip(lo, hi, strict=True))
    return SegLesion(uid, number, label, SparseMask(tuple(lo), np.ones(shape, bool)), probability)


CUBE = _box_geometry((2, 3, 4), 5, 5, 7, 7)  # slices 2-4, rows 5-7, cols 5-7: 27 voxels


def test_reference_mask_is_the_rasterised_outline():
    m = reference_mask(_lesion("a", "1", CUBE))
    assert m.origin == (2, 5, 5) and m.voxels == 27
    assert reference_mask(_lesion("b", "1", None)) is None


def test_one_voxel_shift_along_columns_and_along_slices_by_hand():
    scan = _scan("1")
    ref = [_lesion("a", "1", CUBE)]
    # A 3x3x3 cube shifted by one column (0.5 mm): 18 of 27 voxels shared -> Dice 2/3.
    # Surfaces: 26 voxels each (all but the centre); on each side 10 lie 0.5 mm from the
    # other surface (the 9 of the outer face and the one facing the other's centre), 16 on it.
    rows, fates = match_scan(scan, ref, [_pred("1", (2, 5, 6), (5, 8, 9))], tolerance_mm=0.25)
    m = rows[0].measures
    assert m["dice"] == pytest.approx(2 / 3)
    assert m["iou"] == pytest.approx(18 / 36)
    assert m["hd95_mm"] == pytest.approx(0.5)
    assert m["assd_mm"] == pytest.approx(20 * 0.5 / 52)
    assert m["nsd"] == pytest.approx(32 / 52)
    assert fates[0]["status"] == "matched" and fates[0]["lesion_id"] == "a"
    # The same shift along slices is 2 mm for the 9 voxels of the outer face (spacing is
    # (slice, row, column)); the voxel facing the other's centre is 0.5 mm (one column)
    # from the other's surface.
    rows, _ = match_scan(scan, ref, [_pred("1", (3, 5, 5), (6, 8, 8))], tolerance_mm=2.0)
    m = rows[0].measures
    assert m["dice"] == pytest.approx(2 / 3)
    assert m["hd95_mm"] == pytest.approx(2.0)
    assert m["assd_mm"] == pytest.approx(2 * (9 * 2.0 + 0.5) / 52)
    assert m["nsd"] == 1.0
    # And the package's shapes module gives the same on the dense volumes.
    a = np.zeros((12, 30, 30), bool)
    a[2:5, 5:8, 5:8] = True
    b = np.roll(a, 1, axis=0)
    assert shapes.assd(a, b, (2.0, 1.0, 0.5)) == pytest.approx(m["assd_mm"])


def test_best_overlap_wins_and_the_rest_are_false_positives():
    scan = _scan("1")
    ref = [_lesion("a", "1", CUBE), _lesion("b", "1", _box_geometry((8,), 20, 20, 22, 22))]
    preds = [
        _pred("1", (2, 5, 7), (5, 8, 10), label="weak"),  # shares one column with a
        _pred("1", (2, 5, 5), (5, 8, 8), label="exact"),
        _pred("1", (10, 0, 0), (11, 2, 2), label="nowhere"),
    ]
    rows, fates = match_scan(scan, ref, preds, tolerance_mm=1.0)
    assert [(r.lesion.lesion_id, r.matched, r.by) for r in rows] == [
        ("a", True, "exact"),
        ("b", False, None),
    ]
    assert [f["status"] for f in fates] == ["false_positive", "matched", "false_positive"]


def test_one_prediction_over_two_references_matches_the_better_one():
    scan = _scan("1")
    left = _box_geometry((2,), 0, 0, 3, 3)  # 16 voxels
    right = _box_geometry((2,), 5, 0, 6, 3)  # 8 voxels
    pred = _pred("1", (2, 0, 0), (3, 4, 7))  # covers both and the gap: 28 voxels
    rows, fates = match_scan(scan, [_lesion("l", "1", left), _lesion("r", "1", right)], [pred], 1.0)
    assert [(r.lesion.lesion_id, r.matched) for r in rows] == [("l", True), ("r", False)]
    assert rows[0].measures["iou"] == pytest.approx(16 / 28)


def test_centre_in_contour_without_overlap_and_unoutlined_references():
    scan = _scan("1")
    # A ring-shaped prediction (slice 6, rows and columns 10-14, hole 11-13) and a point
    # reference (no outline) whose centre lies on the ring: matched by its centre.
    ring = np.ones((1, 5, 5), bool)
    ring[0, 1:4, 1:4] = False
    pred = SegLesion("1", 1, "ring", SparseMask((6, 10, 10), ring), 0.4)
    centre = GRID.to_patient(6, 10, 12)  # column 10, row 12: voxel (6, 12, 10), on the ring
    point = _lesion("pt", "1", None, centre=centre)
    rows, fates = match_scan(scan, [point], [pred], 1.0)
    assert fates[0]["status"] == "matched"
    assert rows[0].matched and not rows[0].outlined and rows[0].measures is None
    # A reference inside the ring's hole: no overlap, but the ring's centroid (6, 12, 12)
    # lies in it, so they match (with IoU 0, hence Dice 0).
    inner = _lesion("in", "1", _box_geometry((6,), 11.6, 11.6, 12.4, 12.4))  # voxel (6, 12, 12)
    assert reference_mask(inner).voxels == 1
    rows, _ = match_scan(scan, [inner], [pred], 1.0)
    assert rows[0].matched and rows[0].measures["dice"] == 0.0
    # Moved off the centroid, the same reference no longer matches.
    off = _lesion("off", "1", _box_geometry((7,), 11.6, 11.6, 12.4, 12.4))
    rows, fates = match_scan(scan, [off], [pred], 1.0)
    assert not rows[0].matched and fates[0]["status"] == "false_positive"


def test_predictions_on_excluded_lesions_are_ignored():
    scan = _scan("1")
    ref = [
        _lesion("a", "1", CUBE),
        _lesion("x", "1", _box_geometry((9,), 20, 20, 22, 22), excluded=True),
        _lesion("y", "1", None, excluded=True, centre=GRID.to_patient(0, 1, 1)),
    ]
    preds = [
        _pred("1", (9, 21, 21), (10, 25, 25), label="on x"),
        _pred("1", (0, 0, 0), (1, 3, 3), label="on y's centre"),
        _pred("1", (2, 5, 5), (5, 8, 8), label="on a"),
        _pred("1", (6, 20, 0), (7, 22, 2), label="false"),
    ]
    rows, fates = match_scan(scan, ref, preds, 1.0)
    assert [r.lesion.lesion_id for r in rows] == ["a"]
    assert [(f["label"], f["status"], f["lesion_id"]) for f in fates] == [
        ("on x", "ignored", "x"),
        ("on y's centre", "ignored", "y"),
        ("on a", "matched", "a"),
        ("false", "false_positive", None),
    ]


def _truth():
    scans = (_scan("1", "S1"), _scan("2", "S1"), _scan("3", "S2"))
    lesions = (
        _lesion("a", "1", CUBE),
        _lesion("b", "1", _box_geometry((8,), 20, 20, 22, 22), size="8-15 mm"),
        _lesion("c", "2", CUBE),
        _lesion("x", "3", CUBE, excluded=True),
    )
    return Truth("ds", "1.0.0", "test", "centre_distance", 5.0, 3, scans, lesions)


def _preds():
    return [
        _pred("1", (2, 5, 6), (5, 8, 9), label="a'"),  # Dice 2/3 on a
        _pred("2", (2, 5, 5), (5, 8, 8), label="c'"),  # Dice 1 on c
        _pred("2", (10, 0, 0), (11, 2, 2), label="fp"),
        _pred("3", (2, 5, 5), (5, 8, 8), label="on x"),  # ignored
    ]


def test_aggregate_figures_by_hand():
    r = evaluate_segmentation(_truth(), _preds(), tolerance_mm=0.25, bootstrap=0)
    f = {k: v["value"] for k, v in r["figures"].items()}
    assert f["dice"] == pytest.approx((2 / 3 + 0 + 1) / 3)  # b missed counts 0
    assert f["nsd"] == pytest.approx((32 / 52 + 0 + 1) / 3)
    assert f["hd95_mm"] == pytest.approx((0.5 + 0.0) / 2)  # matched only
    assert f["assd_mm"] == pytest.approx((10 / 52 + 0.0) / 2)
    assert f["lesion_sensitivity"] == pytest.approx(2 / 3)
    assert f["false_positive_lesions_per_scan"] == pytest.approx(1 / 3)
    assert r["counts"] == {
        "scans": 3,
        "lesions": 3,
        "excluded_lesions": 1,
        "marks": 4,
        "cases": 3,
        "positive_cases": 2,
    }
    listed = {x["lesion_id"]: x for x in r["lesions"]}
    assert listed["b"]["matched"] is False and listed["b"]["dice"] == 0.0
    assert listed["b"]["hd95_mm"] is None and listed["a"]["by"] == "a'"
    assert [p["status"] for p in r["predictions"]] == [
        "matched",
        "matched",
        "false_positive",
        "ignored",
    ]
    assert all(v["ci"] is None for v in r["figures"].values())


def test_strata_by_scan_and_by_lesion():
    r = evaluate_segmentation(_truth(), _preds(), tolerance_mm=0.25, bootstrap=50, seed=3)
    json.dumps(r, allow_nan=False)  # JSON-ready: no NaN, no numpy types
    site = r["strata"]["site"]
    assert (site["S1"]["scans"], site["S1"]["lesions"]) == (2, 3)
    assert site["S1"]["figures"]["false_positive_lesions_per_scan"]["value"] == 0.5
    assert (site["S2"]["scans"], site["S2"]["lesions"]) == (1, 0)
    assert site["S2"]["figures"]["dice"]["value"] is None
    assert site["S2"]["figures"]["false_positive_lesions_per_scan"]["value"] == 0.0
    size = r["strata"]["size"]
    assert (
        size["8-15 mm"]["lesions"] == 1
        and size["8-15 mm"]["figures"]["lesion_sensitivity"]["value"] == 0.0
    )
    assert size["4-6 mm"]["figures"]["dice"]["value"] == pytest.approx((2 / 3 + 1) / 2)
    assert size["4-6 mm"]["figures"]["false_positive_lesions_per_scan"]["value"] is None


def test_bootstrap_over_scans_matches_a_loop():
    r = evaluate_segmentation(_truth(), _preds(), tolerance_mm=0.25, bootstrap=400, seed=5)
    base = evaluate_segmentation(_truth(), _preds(), tolerance_mm=0.25, bootstrap=0)
    per_scan = {}
    for x in base["lesions"]:
        per_scan.setdefault(x["series_uid"], []).append(x)
    uids = ["1", "2", "3"]
    fp = {"1": 0, "2": 1, "3": 0}
    idx = np.random.default_rng(5).integers(0, 3, size=(400, 3))
    dice, sens, fps = [], [], []
    for row in idx:
        lesions = [x for i in row for x in per_scan.get(uids[i], [])]
        if lesions:
            dice.append(np.mean([x["dice"] for x in lesions]))
            sens.append(np.mean([x["matched"] for x in lesions]))
        fps.append(np.mean([fp[uids[i]] for i in row]))
    assert r["figures"]["dice"]["ci"] == pytest.approx(list(np.percentile(dice, [2.5, 97.5])))
    assert r["figures"]["lesion_sensitivity"]["ci"] == pytest.approx(
        list(np.percentile(sens, [2.5, 97.5]))
    )
    assert r["figures"]["false_positive_lesions_per_scan"]["ci"] == pytest.approx(
        list(np.percentile(fps, [2.5, 97.5]))
    )
    assert r["conventions"]["bootstrap"]["unit"] == "scan"


# ------------------------------------------------------------- DICOM round trip


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    return fx.version(tmp_path_factory.mktemp("seg-eval"))


def test_seg_round_trip_on_synthetic_ct(version):
    inp, truth = version
    shape = (8, 64, 64)
    files = {}
    for case in inp.cases:
        series = case.series[0]
        # The product outlines ref1 as reader R1 did (one column to the left) and misses ref2.
        r1 = next(
            r for r in inp.reads if r.series_uid == series.series_uid and r.reader_pseudo_id == "R1"
        )
        mask = finding_mask(r1.findings[0])
        dense = np.zeros(shape, bool)
        dense[tuple(slice(o, o + n) for o, n in zip(mask.origin, mask.data.shape, strict=True))] = (
            mask.data
        )
        files[f"{case.case_id}.dcm"] = fx.seg_bytes(series, [dense], descriptions={1: "p=0.7"})
    parsed = parse_segmentations(files, truth)
    assert [s.probability for s in parsed.segments] == [0.7, 0.7]
    r = evaluate_segmentation(truth, parsed.segments, tolerance_mm=1.0, bootstrap=100, seed=0)
    ref1 = next(x for x in inp.reference if x.ref_finding_id == "C0000-ref1")
    a = np.zeros(shape, bool)
    m = finding_mask(ref1.geometry)
    a[tuple(slice(o, o + n) for o, n in zip(m.origin, m.data.shape, strict=True))] = m.data
    expected = shapes.compare(a, dense, (1.25, 0.7, 0.7), 1.0)
    listed = {x["lesion_id"]: x for x in r["lesions"]}
    assert listed["C0000-ref1"]["matched"] and listed["C0000-ref1"]["dice"] == pytest.approx(
        expected["dice"]
    )
    assert 0.5 < expected["dice"] < 1.0
    assert listed["C0000-ref1"]["hd95_mm"] == pytest.approx(expected["hd95"])
    assert not listed["C0000-ref2"]["matched"]
    assert r["figures"]["lesion_sensitivity"]["value"] == 0.5
    assert r["figures"]["false_positive_lesions_per_scan"]["value"] == 0.0
    assert r["counts"]["excluded_lesions"] == 2  # ref3 of each case
