"""Detection scoring on hand-computed cases: one test per convention.

Grids are 1 mm isotropic and axial with origin (0, 0, 0), so a point's patient
coordinates are its (col, row, slice) indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from qc.evaluation import bootstrap as bs
from qc.evaluation.detection import evaluate_detection
from qc.evaluation.truth import Lesion, Scan, Truth
from qc.matching import Grid

GRID = Grid.regular(40, rows=100, columns=100, slice_thickness=1.0)


@dataclass(frozen=True)
class Det:
    series_uid: str
    x: float
    y: float
    z: float
    probability: float
    line: int = 0


def scan(uid, *, patient=None, label="", **strata):
    return Scan(uid, f"case-{uid}", patient or f"pat-{uid}", GRID, label, strata)


def lesion(lid, uid, centre, diameter, *, excluded=False, geometry=None, **strata):
    return Lesion(lid, uid, f"case-{uid}", "nodule", centre, diameter, geometry,
                  excluded=excluded, strata=strata)  # fmt: skip


def truth(scans, lesions, rule="centre_distance", threshold=0.0):
    return Truth("ds", "1.0.0", "test", rule, threshold, 3, tuple(scans), tuple(lesions))


def run(t, dets, **kw):
    kw.setdefault("bootstrap", 0)
    kw.setdefault("strata", False)
    kw.setdefault("all_rules", False)
    return evaluate_detection(t, dets, **kw)


def value(result, name):
    return result["figures"][name]["value"]


# ---------------------------------------------------------------- hits


def test_a_mark_within_the_radius_hits_and_one_on_the_boundary_is_a_false_positive():
    t = truth([scan("s1")], [lesion("L1", "s1", (30.0, 30.0, 10.0), 10.0)])
    r = run(t, [Det("s1", 34.9, 30, 10, 0.9, 2), Det("s1", 35.0, 30, 10, 0.8, 3)])
    assert value(r, "sensitivity") == 1.0
    assert value(r, "fp_per_scan") == 1.0  # 5.0 mm is not strictly within 5 mm
    assert r["counts"]["hit_marks"] == 1 and r["counts"]["false_positive_marks"] == 1
    assert r["lesions"][0]["matched"] and r["lesions"][0]["by"] == 2


def test_a_lesion_without_a_diameter_gets_luna16s_10_mm():
    t = truth([scan("s1")], [lesion("L1", "s1", (30.0, 30.0, 10.0), None)])
    r = run(t, [Det("s1", 34.5, 30, 10, 0.9), Det("s1", 30, 35.5, 10, 0.9)])
    assert value(r, "sensitivity") == 1.0
    assert value(r, "fp_per_scan") == 1.0


def test_marks_on_an_excluded_finding_are_neither_hits_nor_false_positives():
    t = truth(
        [scan("s1")],
        [
            lesion("L1", "s1", (30.0, 30.0, 10.0), 10.0),
            lesion("X1", "s1", (70.0, 70.0, 20.0), 6.0, excluded=True),
        ],
    )
    r = run(t, [Det("s1", 70, 71, 20, 0.95, 2), Det("s1", 10, 10, 5, 0.7, 3)])
    assert value(r, "fp_per_scan") == 1.0  # only the mark at (10, 10, 5)
    assert value(r, "sensitivity") == 0.0  # L1 missed; X1 is not counted
    assert r["counts"]["lesions"] == 1 and r["counts"]["excluded_lesions"] == 1
    assert r["counts"]["marks_on_excluded_only"] == 1
    listing = {x["lesion_id"]: x for x in r["lesions"]}
    assert listing["X1"]["excluded"] is True and listing["X1"]["probability"] == 0.95


def test_several_hits_on_one_lesion_count_once_at_the_most_probable():
    t = truth([scan("s1")], [lesion("L1", "s1", (30.0, 30.0, 10.0), 10.0)])
    dets = [Det("s1", 30, 30, 10, 0.3, 2), Det("s1", 31, 30, 10, 0.7, 3),
            Det("s1", 30, 31, 10, 0.6, 4)]  # fmt: skip
    r = run(t, dets)
    assert value(r, "fp_per_scan") == 0.0
    assert r["counts"]["hit_marks"] == 3
    assert r["lesions"][0]["probability"] == 0.7 and r["lesions"][0]["by"] == 3
    assert value(r, "sensitivity") == 1.0
    assert value(run(t, dets, operating_threshold=0.75), "sensitivity") == 0.0
    # on the FROC the lesion enters at 0.7: with no false positive it is found at 1/8
    assert value(r, "sens_at_0.125") == 1.0


def test_a_mark_within_two_lesions_radii_hits_both():
    t = truth(
        [scan("s1")],
        [
            lesion("L1", "s1", (30.0, 30.0, 10.0), 10.0),
            lesion("L2", "s1", (36.0, 30.0, 10.0), 10.0),
        ],
    )
    r = run(t, [Det("s1", 33, 30, 10, 0.9, 2)])
    assert value(r, "sensitivity") == 1.0
    assert value(r, "fp_per_scan") == 0.0
    assert {x["by"] for x in r["lesions"]} == {2}


# ---------------------------------------------------------------- FROC summaries


def _four_lesions():
    """Two scans; lesions hit at 0.9, 0.6, 0.3 and one missed; false positives at
    0.8, 0.5, 0.4, 0.2. Operating points (FP/scan, sens): (0, 0), (0, .25), (.5, .25),
    (.5, .5), (1, .5), (1.5, .5), (1.5, .75), (2, .75)."""
    les = [
        lesion("L1", "a", (20.0, 20.0, 10.0), 8.0),
        lesion("L2", "a", (60.0, 60.0, 10.0), 8.0),
        lesion("L3", "b", (20.0, 20.0, 20.0), 8.0),
        lesion("L4", "b", (60.0, 60.0, 20.0), 8.0),
    ]
    dets = [
        Det("a", 20, 20, 10, 0.9), Det("a", 60, 60, 10, 0.6), Det("b", 20, 20, 20, 0.3),
        Det("a", 90, 90, 30, 0.8), Det("b", 90, 90, 30, 0.5), Det("a", 5, 90, 30, 0.4),
        Det("b", 5, 90, 30, 0.2),
    ]  # fmt: skip
    return truth([scan("a"), scan("b")], les), dets


def test_cpm_monai_score_and_metrics_reloaded_area_by_hand():
    t, dets = _four_lesions()
    r = run(t, dets)
    expected = {0.125: 0.25, 0.25: 0.25, 0.5: 0.5, 1: 0.5, 2: 0.75, 4: 0.75, 8: 0.75}
    for rate, sens in expected.items():
        assert value(r, f"sens_at_{rate:g}") == pytest.approx(sens, abs=1e-15)
    assert value(r, "cpm") == pytest.approx(3.75 / 7, abs=1e-15)
    assert value(r, "froc_score_monai") == pytest.approx(3.5 / 6, abs=1e-15)
    # area 0..8: .125 + .25 + .25 + .375 + 6 x .75 = 5.5, over 8
    assert value(r, "froc_auc_metrics_reloaded") == pytest.approx(5.5 / 8, abs=1e-15)
    # operating point 0.5: hits 0.9, 0.6; false positives 0.8, 0.5
    assert value(r, "sensitivity") == 0.5
    assert value(r, "fp_per_scan") == 1.0
    assert value(r, "f1") == pytest.approx(2 * 2 / (2 * 2 + 2 + 2))


def test_a_hit_tied_with_a_false_positive_is_interpolated_between_points():
    """One scan; hits at 0.9 and 0.7, false positives at 0.7 and 0.1: points (0, .5),
    (1, 1), (2, 1), so sensitivity is .5 + .5 x rate below 1 FP per scan."""
    t = truth(
        [scan("s1")],
        [lesion("L1", "s1", (20.0, 20.0, 10.0), 8.0), lesion("L2", "s1", (60.0, 60.0, 10.0), 8.0)],
    )
    dets = [Det("s1", 20, 20, 10, 0.9), Det("s1", 60, 60, 10, 0.7), Det("s1", 90, 90, 30, 0.7),
            Det("s1", 5, 90, 30, 0.1)]  # fmt: skip
    r = run(t, dets)
    assert value(r, "sens_at_0.125") == pytest.approx(0.5625, abs=1e-15)
    assert value(r, "sens_at_0.25") == pytest.approx(0.625, abs=1e-15)
    assert value(r, "sens_at_0.5") == pytest.approx(0.75, abs=1e-15)
    assert value(r, "sens_at_1") == 1.0
    assert value(r, "cpm") == pytest.approx(5.9375 / 7, abs=1e-15)
    assert value(r, "froc_score_monai") == pytest.approx(5.375 / 6, abs=1e-15)
    assert value(r, "froc_auc_metrics_reloaded") == pytest.approx(7.75 / 8, abs=1e-15)


def test_the_froc_curve_holds_the_grid_and_its_thresholds():
    t, dets = _four_lesions()
    curve = run(t, dets)["curves"]["froc"]
    fp = curve["fp_per_scan"]
    assert fp[0] == 0.0 and 0.125 in fp and 8.0 in fp
    at = dict(zip(fp, curve["sensitivity"], strict=True))
    th = dict(zip(fp, curve["thresholds"], strict=True))
    assert at[0.0] == 0.25 and at[1.0] == 0.5 and at[64.0] == 0.75
    assert th[0.0] == 0.9  # the lowest threshold with no false positive
    assert th[1.0] == 0.5  # two false positives on two scans
    assert th[64.0] == 0.2


# ---------------------------------------------------------------- patients


def test_patient_level_sensitivity_and_specificity():
    scans = [
        scan("p1"),  # lesion, marked: true positive
        scan("p2", label="negative"),  # no lesion, marked: false positive
        scan("p3", label="positive"),  # positive label, not marked: false negative
        scan("p4"),  # nothing: true negative
        scan("p5"),  # only an excluded finding, not marked: true negative
        scan("p6a", patient="p6"),  # lesion on one scan of p6,
        scan("p6b", patient="p6"),  # the mark on the other: p6 is a true positive
    ]
    les = [
        lesion("L1", "p1", (20.0, 20.0, 10.0), 8.0),
        lesion("X5", "p5", (20.0, 20.0, 10.0), 8.0, excluded=True),
        lesion("L6", "p6a", (20.0, 20.0, 10.0), 8.0),
    ]
    dets = [Det("p1", 20, 20, 10, 0.9), Det("p2", 50, 50, 10, 0.6), Det("p3", 50, 50, 10, 0.4),
            Det("p6b", 50, 50, 10, 0.8)]  # fmt: skip
    r = run(truth(scans, les), dets)
    assert value(r, "patient_sensitivity") == pytest.approx(2 / 3)
    assert value(r, "patient_specificity") == pytest.approx(2 / 3)


# ---------------------------------------------------------------- strata


def test_scan_and_lesion_strata():
    scans = [scan("a", site="A"), scan("b", site="A"), scan("c", site="B"), scan("d", site="B")]
    les = [
        lesion("L1", "a", (20.0, 20.0, 10.0), 8.0, size="small"),
        lesion("L2", "b", (20.0, 20.0, 10.0), 8.0, size="big"),
        lesion("L3", "c", (20.0, 20.0, 10.0), 8.0, size="small"),
        lesion("L4", "d", (20.0, 20.0, 10.0), 8.0, size="small"),
    ]
    dets = [Det("a", 20, 20, 10, 0.9), Det("b", 20, 20, 10, 0.8), Det("c", 20, 20, 10, 0.2),
            Det("c", 80, 80, 30, 0.7), Det("d", 80, 80, 30, 0.6), Det("d", 80, 10, 30, 0.55)]  # fmt: skip  # noqa: E501
    r = run(truth(scans, les), dets, strata=True)
    site = r["strata"]["site"]
    assert site["A"]["scans"] == 2 and site["A"]["lesions"] == 2
    assert site["A"]["figures"]["sensitivity"]["value"] == 1.0
    assert site["A"]["figures"]["fp_per_scan"]["value"] == 0.0
    assert site["B"]["figures"]["sensitivity"]["value"] == 0.0
    assert site["B"]["figures"]["fp_per_scan"]["value"] == 1.5
    # site B: no hit at all on the curve until 0.2, after 3 FP over 2 scans
    assert site["B"]["figures"]["sens_at_2"]["value"] == 0.5
    size = r["strata"]["size"]
    assert size["small"]["lesions"] == 3 and size["big"]["lesions"] == 1
    assert size["small"]["figures"]["sensitivity"]["value"] == pytest.approx(1 / 3)
    assert size["big"]["figures"]["sensitivity"]["value"] == 1.0
    # false positives of a lesion stratum are over all scans: 3 / 4
    assert size["big"]["figures"]["fp_per_scan"]["value"] == 0.75
    assert size["big"]["figures"]["patient_sensitivity"]["value"] is None
    assert set(r["strata"]) == {"site", "manufacturer", "slice_thickness", "finding_type",
                                "size", "agreement"}  # fmt: skip


# ---------------------------------------------------------------- rules


def _elongated():
    """An outline 20 px wide and 4 px tall on slice 10, declared 4 mm across."""
    geometry = {
        "kind": "ellipse",
        "shapes": [{"slice_index": 10, "points": [[20, 28], [40, 32]]}],
        "centre_mm": [30.0, 30.0, 10.0],
    }
    return lesion("L1", "s1", (30.0, 30.0, 10.0), 4.0, geometry=geometry)


def _brute_iou(mark):
    """IoU of the elongated outline's voxels with the 2 mm sphere about `mark`, by
    brute force over the whole grid (voxel centres inside count)."""
    s, r, c = np.mgrid[0:40, 0:100, 0:100].astype(float)
    outline = (s == 10) & (((c - 30) / 10) ** 2 + ((r - 30) / 2) ** 2 <= 1)
    sphere = (c - mark[0]) ** 2 + (r - mark[1]) ** 2 + (s - mark[2]) ** 2 <= 4.0
    return (outline & sphere).sum() / (outline | sphere).sum()


def test_the_rule_table_marks_the_declared_rule_and_the_rules_disagree():
    t = truth([scan("s1")], [_elongated()], rule="centre_in_contour")
    # inside the outline, 9 mm from the centre: a contour hit, not a radius hit, and
    # the 2 mm sphere about it overlaps the outline by IoU 6/84 < 0.1
    assert _brute_iou((39, 30, 10)) == pytest.approx(6 / 84)
    r = run(t, [Det("s1", 39, 30, 10, 0.9)], all_rules=True)
    rules = {e["rule"]: e for e in r["rules"]}
    assert [e["rule"] for e in r["rules"]] == ["centre_in_contour", "centre_within_radius",
                                               "overlap_iou"]  # fmt: skip
    assert rules["centre_in_contour"]["declared"] is True
    assert not rules["centre_within_radius"]["declared"] and not rules["overlap_iou"]["declared"]
    assert r["conventions"]["rule"] == "centre_in_contour"
    assert rules["centre_in_contour"]["figures"]["sensitivity"]["value"] == 1.0
    assert rules["centre_within_radius"]["figures"]["sensitivity"]["value"] == 0.0
    assert rules["overlap_iou"]["threshold"] == 0.1
    assert rules["overlap_iou"]["figures"]["sensitivity"]["value"] == 0.0
    assert value(r, "sensitivity") == 1.0
    # 6 mm from the centre the sphere overlaps by IoU 11/79 >= 0.1: an IoU hit
    assert _brute_iou((36, 30, 10)) == pytest.approx(11 / 79)
    r = run(t, [Det("s1", 36, 30, 10, 0.9)], all_rules=True)
    rules = {e["rule"]: e for e in r["rules"]}
    assert rules["overlap_iou"]["figures"]["sensitivity"]["value"] == 1.0


def test_iou_rule_takes_the_mark_as_a_sphere_of_the_lesion_diameter():
    sphere = lesion("L1", "s1", (30.0, 30.0, 10.0), 8.0)  # no outline: a sphere itself
    t = truth([scan("s1")], [sphere], rule="overlap_iou", threshold=0.1)
    on = run(t, [Det("s1", 31, 30, 10, 0.9)])
    off = run(t, [Det("s1", 37.5, 30, 10, 0.9)])  # spheres of radius 4 mm 7.5 mm apart
    assert value(on, "sensitivity") == 1.0
    assert value(off, "sensitivity") == 0.0
    assert on["conventions"]["rule"] == "overlap_iou" and on["conventions"]["threshold"] == 0.1


def test_a_declared_rule_outside_the_three_is_scored_too():
    t = truth([scan("s1")], [lesion("L1", "s1", (30.0, 30.0, 10.0), 10.0)], threshold=3.0)
    r = run(t, [Det("s1", 34, 30, 10, 0.9)], all_rules=True)  # 4 mm off: in the radius
    rules = [(e["rule"], e["threshold"], e["declared"]) for e in r["rules"]]
    assert rules[0] == ("centre_distance", 3.0, True)
    assert ("centre_within_radius", None, False) in rules and len(rules) == 4
    assert r["rules"][0]["figures"]["sensitivity"]["value"] == 0.0
    assert r["rules"][1]["figures"]["sensitivity"]["value"] == 1.0


@pytest.mark.parametrize(
    ("rule", "threshold"),
    [
        ("distance_or_inside", 2.0),
        ("overlap_dice", 0.15),
        ("pylidc", 1.0),
        ("centre_distance", 2.0),
    ],
)
def test_every_other_declared_rule_is_scored_and_marked(rule, threshold):
    t = truth([scan("s1")], [_elongated()], rule=rule, threshold=threshold)
    # near the outline's edge (pylidc measures to the outline), inside it, 1.5 mm off
    near = run(t, [Det("s1", 30, 28.5, 10, 0.9), Det("s1", 80, 80, 30, 0.8)], all_rules=True)
    entry = near["rules"][0]
    assert (entry["rule"], entry["declared"]) == (rule, True) and len(near["rules"]) == 4
    assert entry["figures"]["sensitivity"]["value"] == 1.0
    assert entry["figures"]["fp_per_scan"]["value"] == 1.0
    far = run(t, [Det("s1", 30, 45, 10, 0.9)])
    assert value(far, "sensitivity") == 0.0 and value(far, "fp_per_scan") == 1.0


def test_a_centre_distance_rule_without_threshold_falls_back_to_the_radius_and_says_so():
    t = truth([scan("s1")], [lesion("L1", "s1", (30.0, 30.0, 10.0), 10.0)])
    r = run(t, [Det("s1", 34, 30, 10, 0.9)], all_rules=True)
    assert r["conventions"]["rule"] == "centre_within_radius"
    assert "centre_distance" in r["conventions"]["rule_note"]
    assert r["rules"][0]["declared"] is True and len(r["rules"]) == 3


def test_no_marks_and_no_lesions_give_defined_or_null_figures():
    t = truth([scan("s1")], [lesion("L1", "s1", (30.0, 30.0, 10.0), 10.0)])
    r = run(t, [], bootstrap=20)
    assert value(r, "cpm") == 0.0 and value(r, "fp_per_scan") == 0.0
    assert value(r, "patient_sensitivity") == 0.0
    r = run(truth([scan("s1")], []), [Det("s1", 1, 1, 1, 0.7)], bootstrap=20)
    assert value(r, "cpm") is None and r["figures"]["cpm"]["ci"] is None
    assert value(r, "fp_per_scan") == 1.0 and value(r, "patient_specificity") == 0.0


# ---------------------------------------------------------------- bootstrap


def _random(seed=3, scans=40):
    rng = np.random.default_rng(seed)
    sc, les, dets = [], [], []
    for i in range(scans):
        uid = f"s{i}"
        sc.append(scan(uid, site="AB"[i % 2]))
        for k in range(int(rng.integers(0, 3))):
            c = tuple(float(v) for v in rng.uniform([10, 10, 5], [90, 90, 35]))
            les.append(lesion(f"L{i}.{k}", uid, c, float(rng.uniform(4, 20)), size="x"))
            if rng.random() < 0.7:
                dets.append(Det(uid, c[0] + 0.5, c[1], c[2], float(rng.uniform(0.2, 1))))
        for _ in range(int(rng.integers(0, 8))):
            p = rng.uniform([0, 0, 0], [99, 99, 39])
            dets.append(Det(uid, *map(float, p), float(rng.random() ** 2)))
    return truth(sc, les), dets


def test_bootstrap_intervals_hold_the_point_and_are_seeded():
    t, dets = _random()
    a = run(t, dets, bootstrap=300, seed=11, strata=True)
    b = run(t, dets, bootstrap=300, seed=11, strata=True)
    c = run(t, dets, bootstrap=300, seed=12)
    for name in ("cpm", "froc_score_monai", "froc_auc_metrics_reloaded", "sensitivity",
                 "fp_per_scan", "f1"):  # fmt: skip
        fig = a["figures"][name]
        assert fig["ci"][0] <= fig["value"] <= fig["ci"][1], name
        assert fig["ci"][0] < fig["ci"][1], name
    assert a == b
    assert c["figures"]["cpm"]["ci"] != a["figures"]["cpm"]["ci"]
    assert a["figures"]["cpm"]["value"] == c["figures"]["cpm"]["value"]
    band = a["curves"]["froc"]
    assert all(lo <= s <= hi for lo, s, hi in
               zip(band["ci_low"], band["sensitivity"], band["ci_high"], strict=True)
               if lo is not None)  # fmt: skip
    assert a["strata"]["site"]["A"]["figures"]["cpm"]["ci"] is not None


def test_bootstrap_weights_draw_n_scans_per_resample_reproducibly():
    w = bs.weights(7, 50, seed=5)
    assert w.shape == (50, 7) and (w.sum(axis=1) == 7).all()
    assert (w == bs.weights(7, 50, seed=5)).all()
    assert not (w == bs.weights(7, 50, seed=6)).all()
    assert bs.two_sided_p(np.zeros(10)) == 1.0
    assert bs.two_sided_p(np.ones(10)) == 0.0


def test_against_monai_when_it_is_installed():
    monai_metrics = pytest.importorskip("monai.metrics")
    t, dets = _four_lesions()
    r = run(t, dets)
    # MONAI's inputs: per mark, its probability and whether it is a hit (its best
    # hit on a lesion; extra hits and misses as LUNA16 leaves them out)
    fp_probs = np.array([0.8, 0.5, 0.4, 0.2])
    tp_probs = np.array([0.9, 0.6, 0.3])
    fps, sens = monai_metrics.compute_froc_curve_data(
        fp_probs, tp_probs, num_targets=4, num_images=2
    )
    score = monai_metrics.compute_froc_score(fps, sens)
    assert value(r, "froc_score_monai") == pytest.approx(float(score), abs=1e-12)
