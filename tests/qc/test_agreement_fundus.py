"""Agreement on fundus photographs (the fundus-dr schema) from plain data: the
DR grade against scikit-learn and statsmodels, how "ungradable" is handled,
referable DR and macular oedema, per-lesion-type matching in 2-D, and the
optic disc / cup outlines."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from qc.agreement import categorical as cat
from qc.agreement import synthetic
from qc.agreement.report import CaseData, LesionRule, Reader, Settings, build_report
from qc.matching import Grid, Mark

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "annotation_server/agreement/report.schema.json").read_text()
)
FIELDS = list(synthetic.FUNDUS_FIELDS)
READERS = [Reader("A", "A"), Reader("B", "B"), Reader("C", "C")]
PLANE = Grid(positions=((0.0, 0.0, 0.0),), rows=512, columns=512, patient_space=False)
SCALE = [0, 1, 2, 3, 4]


def _settings(**overrides) -> Settings:
    return synthetic.fundus_settings(replicates=50, **overrides)


def _grade_cases(grades: dict[str, list], dmo=None, cdr=None) -> list[CaseData]:
    n = len(grades["A"])
    cases = []
    for i in range(n):
        labels = {}
        for r in grades:
            g = grades[r][i]
            values = {"dr_grade": g, "dmo": (dmo or {}).get(r, ["absent"] * n)[i]}
            values["referable_dr"] = None if g == "ungradable" else (g >= 2)
            if cdr is not None:
                values["vertical_cdr"] = cdr[r][i]
            labels[r] = values
        cases.append(CaseData(id=f"F{i}", reads={r: [] for r in grades}, labels=labels, grid=PLANE))
    return cases


# 12 photographs, three readers; the first is ungradable for all three.
GRADES = {
    "A": ["ungradable", 0, 1, 2, 2, 3, 4, 0, 1, 2, 0, 3],
    "B": ["ungradable", 0, 2, 2, 1, 3, 4, 0, 1, 3, 0, 4],
    "C": ["ungradable", 1, 1, 2, 2, 4, 3, 0, 0, 2, 0, 3],
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_quadratic_kappa_equals_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    a = rng.choice(SCALE, 150, p=[0.45, 0.2, 0.2, 0.1, 0.05])
    b = np.clip(a + rng.choice([-1, 0, 0, 0, 1, 2], 150), 0, 4)
    ours = cat.cohen_kappa(a, b, "quadratic")
    assert ours == pytest.approx(cohen_kappa_score(a, b, weights="quadratic"), abs=1e-12)
    # Over the whole scale (grade 3 unused): scikit-learn with labels=0..4.
    a, b = np.where(a == 3, 2, a), np.where(b == 3, 4, b)
    whole = cat.cohen_kappa(a, b, "quadratic", categories=SCALE)
    assert whole == pytest.approx(
        cohen_kappa_score(a, b, weights="quadratic", labels=SCALE), abs=1e-12
    )
    assert whole != pytest.approx(cat.cohen_kappa(a, b, "quadratic"))  # the scale matters


def test_fleiss_kappa_equals_statsmodels():
    rng = np.random.default_rng(4)
    truth = rng.choice(SCALE, 80)
    ratings = np.stack(
        [np.clip(truth + rng.choice([-1, 0, 0, 1], 80), 0, 4) for _ in range(5)], axis=1
    )
    table, _ = aggregate_raters(ratings)
    kappa, _se = cat.fleiss_kappa(ratings.astype(float))
    assert kappa == pytest.approx(sm_fleiss_kappa(table, method="fleiss"), abs=1e-12)


def test_report_dr_grade_matches_scikit_learn_and_statsmodels_and_leaves_out_ungradable():
    report = build_report(FIELDS, READERS, _grade_cases(GRADES), _settings())
    jsonschema.validate(report, SCHEMA)
    json.dumps(report, allow_nan=False)
    grade = next(b for b in report["case_labels"] if b["key"] == "dr_grade")
    gradable = {r: [g for g in GRADES[r] if g != "ungradable"] for r in GRADES}
    expected = {}
    for pair in grade["pairwise"]:
        a, b = gradable[pair["a"]], gradable[pair["b"]]
        expected[(pair["a"], pair["b"])] = cohen_kappa_score(
            a, b, weights="quadratic", labels=SCALE
        )
        assert pair["n"] == 11
        assert pair["kappa_quadratic"]["value"] == pytest.approx(
            expected[(pair["a"], pair["b"])], abs=1e-6
        )
        assert pair["kappa_unweighted"]["value"] == pytest.approx(cohen_kappa_score(a, b), abs=1e-6)
    mean = grade["kappa_mean"]["quadratic"]
    assert mean["pairs"] == 3
    assert mean["value"] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)
    assert mean["low"] <= mean["value"] <= mean["high"]
    matrix = np.asarray([gradable[r] for r in "ABC"]).T
    table, _ = aggregate_raters(matrix, n_cat=5)
    assert grade["fleiss_kappa"]["value"] == pytest.approx(
        sm_fleiss_kappa(table, method="fleiss"), abs=1e-6
    )
    assert grade["gwet_form"] == "AC2 (quadratic)"
    assert grade["gwet_ac"]["value"] == pytest.approx(
        cat.gwet_ac(matrix.astype(float), "quadratic", SCALE), abs=1e-6
    )
    assert grade["gwet_ac1"]["value"] == pytest.approx(
        cat.gwet_ac(matrix.astype(float), None, SCALE), abs=1e-6
    )
    outside = grade["outside_scale"]
    assert outside["handling"] == "excluded"
    assert outside["ratings"] == {"ungradable": 3}
    assert (outside["cases_any"], outside["cases_all"]) == (1, 1)
    assert outside["percent_agreement"]["value"] == pytest.approx(1.0)


def test_one_reader_calling_a_photograph_ungradable_drops_only_that_rating():
    grades = {r: list(g) for r, g in GRADES.items()}
    grades["C"][3] = "ungradable"
    report = build_report(FIELDS, READERS, _grade_cases(grades), _settings())
    grade = next(b for b in report["case_labels"] if b["key"] == "dr_grade")
    pairs = {(p["a"], p["b"]): p for p in grade["pairwise"]}
    assert pairs[("A", "B")]["n"] == 11 and pairs[("A", "C")]["n"] == 10
    a = [g for g, c in zip(grades["A"], grades["C"], strict=True) if "ungradable" not in (g, c)]
    c = [g for g in grades["C"] if g != "ungradable"]
    assert pairs[("A", "C")]["kappa_quadratic"]["value"] == pytest.approx(
        cohen_kappa_score(a, c, weights="quadratic", labels=SCALE), abs=1e-6
    )
    outside = grade["outside_scale"]
    assert outside["ratings"] == {"ungradable": 4}
    assert (outside["cases_any"], outside["cases_all"]) == (2, 1)
    # Gradable vs not: 12 cases, one of them split 2 to 1 (1 of 3 pairs agree).
    assert outside["percent_agreement"]["value"] == pytest.approx((11 + 1 / 3) / 12, abs=1e-6)
    ab = {(p["a"], p["b"]): p["kappa"]["value"] for p in outside["pairwise"]}
    assert ab[("A", "B")] == pytest.approx(1.0)
    flags = {r: [float(g == "ungradable") for g in grades[r]] for r in grades}
    assert ab[("A", "C")] == pytest.approx(cohen_kappa_score(flags["A"], flags["C"]), abs=1e-6)


def test_referable_dr_and_macular_oedema_agreement():
    dmo = {
        "A": ["ungradable"] + ["absent"] * 5 + ["present"] * 3 + ["absent"] * 3,
        "B": ["ungradable"] + ["absent"] * 4 + ["present"] * 4 + ["absent"] * 3,
        "C": ["ungradable"] + ["absent"] * 5 + ["present"] * 2 + ["absent"] * 4,
    }
    report = build_report(FIELDS, READERS, _grade_cases(GRADES, dmo), _settings())
    blocks = {b["key"]: b for b in report["case_labels"]}
    referable = blocks["referable_dr"]
    assert referable["derived"] is True and referable["kind"] == "boolean"
    flags = {r: [g >= 2 for g in GRADES[r] if g != "ungradable"] for r in GRADES}
    pair = next(p for p in referable["pairwise"] if (p["a"], p["b"]) == ("A", "B"))
    assert pair["kappa_unweighted"]["value"] == pytest.approx(
        cohen_kappa_score(flags["A"], flags["B"]), abs=1e-6
    )
    assert referable["gwet_ac"]["value"] is not None and referable["gwet_form"] == "AC1"
    # Macular oedema is absent/present; "ungradable" is off the scale, as for the
    # DR grade: left out of kappa (11 gradable photographs), counted apart.
    oedema = blocks["dmo"]
    gradable = {r: [v for v in dmo[r] if v != "ungradable"] for r in dmo}
    pair = next(p for p in oedema["pairwise"] if (p["a"], p["b"]) == ("A", "C"))
    assert pair["n"] == 11
    assert pair["kappa_unweighted"]["value"] == pytest.approx(
        cohen_kappa_score(gradable["A"], gradable["C"]), abs=1e-6
    )
    assert oedema["kappa_mean"]["unweighted"]["pairs"] == 3
    matrix = np.asarray([[["absent", "present"].index(v) for v in gradable[r]] for r in "ABC"]).T
    table, _ = aggregate_raters(matrix, n_cat=2)
    assert oedema["fleiss_kappa"]["value"] == pytest.approx(sm_fleiss_kappa(table), abs=1e-6)
    assert oedema["gwet_form"] == "AC1"
    assert oedema["gwet_ac"]["value"] == pytest.approx(
        cat.gwet_ac(matrix.astype(float), None, [0, 1]), abs=1e-6
    )
    outside = oedema["outside_scale"]
    assert outside["handling"] == "excluded" and outside["values"] == ["ungradable"]
    assert outside["ratings"] == {"ungradable": 3}
    assert (outside["cases_any"], outside["cases_all"]) == (1, 1)


def test_macular_oedema_ungradable_by_one_reader_drops_only_that_rating():
    dmo = {
        "A": ["absent"] * 4 + ["present"] * 4 + ["absent"] * 4,
        "B": ["absent"] * 3 + ["present"] * 5 + ["absent"] * 4,
        "C": ["ungradable"] + ["absent"] * 3 + ["present"] * 3 + ["absent"] * 5,
    }
    report = build_report(FIELDS, READERS, _grade_cases(GRADES, dmo), _settings())
    oedema = next(b for b in report["case_labels"] if b["key"] == "dmo")
    pairs = {(p["a"], p["b"]): p for p in oedema["pairwise"]}
    assert pairs[("A", "B")]["n"] == 12 and pairs[("A", "C")]["n"] == 11
    keep = [i for i, v in enumerate(dmo["C"]) if v != "ungradable"]
    assert pairs[("A", "C")]["kappa_unweighted"]["value"] == pytest.approx(
        cohen_kappa_score([dmo["A"][i] for i in keep], [dmo["C"][i] for i in keep]), abs=1e-6
    )
    outside = oedema["outside_scale"]
    assert outside["ratings"] == {"ungradable": 1}
    assert (outside["cases_any"], outside["cases_all"]) == (1, 0)
    flags = {r: [float(v == "ungradable") for v in dmo[r]] for r in dmo}
    ab = {(p["a"], p["b"]): p["kappa"]["value"] for p in outside["pairwise"]}
    assert ab[("A", "C")] == pytest.approx(cohen_kappa_score(flags["A"], flags["C"]), abs=1e-6)


def _point(mid, reader, col, row, kind="microaneurysm"):
    return Mark(mid, reader, kind, (float(col), float(row), 0.0), "point")


def _box(mid, reader, c0, r0, c1, r1, kind="haemorrhage"):
    centre = ((c0 + c1) / 2, (r0 + r1) / 2, 0.0)
    return Mark(mid, reader, kind, centre, "box", ((0, ((c0, r0), (c1, r1))),))


def _outline(mid, reader, kind, points, shape="polygon"):
    pts = tuple((float(c), float(r)) for c, r in points)
    centre = (float(np.mean([p[0] for p in pts])), float(np.mean([p[1] for p in pts])), 0.0)
    return Mark(mid, reader, kind, centre, shape, ((0, pts),))


def _square(c0, r0, side):
    return [(c0, r0), (c0 + side, r0), (c0 + side, r0 + side), (c0, r0 + side)]


def _lesion_case(with_outlines=True) -> CaseData:
    a = [
        _point("a1", "A", 100, 100),
        _point("a2", "A", 200, 200),
        _point("a3", "A", 300, 300),
        _box("a4", "A", 50, 50, 90, 90),
        _box("a5", "A", 405, 405, 445, 445),
    ]
    b = [
        _point("b1", "B", 104, 103),  # 5 px from a1
        _point("b2", "B", 215, 200),  # 15 px from a2
        _box("b4", "B", 55, 55, 95, 95),  # IoU ~0.62 with a4
        _box("b5", "B", 400, 400, 420, 420),  # IoU ~0.13 with a5, centres 21 px apart
    ]
    if with_outlines:
        a += [
            _outline("ad", "A", "optic_disc", _square(100, 300, 100)),
            _outline("ac", "A", "optic_cup", [(130, 330), (170, 370)], "ellipse"),
        ]
        b += [
            _outline("bd", "B", "optic_disc", _square(110, 300, 100)),
            _outline("bc", "B", "optic_cup", [(130, 330), (170, 370)], "ellipse"),
        ]
    return CaseData(id="L1", reads={"A": a, "B": b}, labels={}, grid=PLANE)


def _lesion_report(**rule) -> dict:
    lesions = LesionRule(
        point_types=synthetic.POINT_TYPES, region_types=synthetic.REGION_TYPES, **rule
    )
    settings = Settings(replicates=20, lesions=lesions, outline_types=synthetic.OUTLINE_TYPES)
    return build_report(FIELDS, READERS[:2], [_lesion_case()], settings)


def test_lesions_match_per_type_points_by_radius_and_regions_by_iou():
    report = _lesion_report()
    jsonschema.validate(report, SCHEMA)
    by_type = {t["finding_type"]: t for t in report["detection"]["by_type"]}
    assert "optic_disc" not in by_type and report["counts"]["clusters"] == 7
    ma = by_type["microaneurysm"]
    assert (ma["rule"], ma["threshold"], ma["unit"], ma["geometry"]) == (
        "centre_distance", 10.0, "px", "point",
    )  # fmt: skip
    (pair,) = ma["pairwise"]
    assert (pair["shared"], pair["marks_a"], pair["marks_b"]) == (1, 3, 2)
    assert ma["agreement"]["value"] == pytest.approx(2 * 1 / (3 + 2))
    assert ma["lidc_counts"] == [3, 1]
    haem = by_type["haemorrhage"]
    assert (haem["rule"], haem["threshold"], haem["unit"]) == ("overlap_iou", 0.3, "IoU")
    assert haem["agreement"]["value"] == pytest.approx(2 * 1 / (2 + 2))
    assert by_type["cotton_wool_spot"]["marks"] == 0
    assert by_type["microaneurysm"]["presence"]["cases_marked"] == 1
    assert report["settings"]["lesion_rule"]["point_radius_px"] == 10.0


def test_the_lesion_rule_is_a_setting():
    report = _lesion_report(
        point_radius_px=20.0, region_rule="centre_distance", region_threshold=30.0
    )
    by_type = {t["finding_type"]: t for t in report["detection"]["by_type"]}
    assert by_type["microaneurysm"]["agreement"]["value"] == pytest.approx(2 * 2 / 5)
    assert by_type["haemorrhage"]["rule"] == "centre_distance"
    assert by_type["haemorrhage"]["agreement"]["value"] == pytest.approx(1.0)


def test_point_radius_is_in_pixels_whatever_the_pixel_spacing():
    spaced = Grid(positions=((0.0, 0.0, 0.0),), pixel_spacing=(0.01, 0.01), patient_space=False)
    rule = LesionRule(point_radius_px=10.0, point_types=("microaneurysm",))
    assert rule.rule_for("microaneurysm", spaced) == ("centre_distance", pytest.approx(0.1))
    assert rule.rule_for("haemorrhage", spaced) == ("overlap_iou", 0.3)


def test_disc_and_cup_dice_on_the_image_grid():
    report = _lesion_report()
    outlines = {o["finding_type"]: o for o in report["outlines"]}
    disc, cup = outlines["optic_disc"], outlines["optic_cup"]
    assert disc["pairs"] == 1 and disc["pairwise"][0]["n"] == 1
    # Two 100 px squares 10 px apart: Dice 0.9, IoU 90/110 (pixel centres, +-1 px).
    assert disc["dice"]["value"] == pytest.approx(0.9, abs=0.01)
    assert disc["iou"]["value"] == pytest.approx(90 / 110, abs=0.015)
    assert cup["dice"]["value"] == pytest.approx(1.0)
    case = _lesion_case()
    reads = {
        "A": case.reads["A"],
        "B": [m for m in case.reads["B"] if m.finding_type != "optic_cup"],
    }
    settings = _settings()
    one = build_report(FIELDS, READERS[:2], [CaseData("L1", reads, {}, grid=PLANE)], settings)
    cup = next(o for o in one["outlines"] if o["finding_type"] == "optic_cup")
    assert (cup["pairs"], cup["outlined_by_one_only"], cup["dice"]["value"]) == (0, 1, None)


def test_vertical_cdr_gets_icc_and_mean_absolute_difference():
    cdr = {
        "A": [0.3, 0.4, 0.5, 0.6, 0.7, 0.35, 0.45, 0.55, 0.65, 0.3, 0.4, 0.5],
        "B": [0.32, 0.41, 0.55, 0.6, 0.66, 0.35, 0.5, 0.55, 0.6, 0.3, 0.42, 0.5],
        "C": [0.3, 0.38, 0.5, 0.62, 0.7, 0.4, 0.45, 0.5, 0.65, 0.33, 0.4, 0.52],
    }
    report = build_report(FIELDS, READERS, _grade_cases(GRADES, cdr=cdr), _settings())
    block = next(b for b in report["case_labels"] if b["key"] == "vertical_cdr")
    diffs = [
        abs(x - y)
        for a, b in (("A", "B"), ("A", "C"), ("B", "C"))
        for x, y in zip(cdr[a], cdr[b], strict=True)
    ]
    assert block["mean_abs_difference"]["value"] == pytest.approx(np.mean(diffs), abs=1e-6)
    assert block["icc"]["ICC(2,1)"]["value"] > 0.8
    assert len(block["bland_altman"]) == 3


def test_synthetic_fundus_report_fits_the_schema():
    report = build_report(*synthetic.fundus(cases=12), _settings())
    jsonschema.validate(report, SCHEMA)
    json.dumps(report, allow_nan=False)
    assert {o["finding_type"] for o in report["outlines"]} == {"optic_disc", "optic_cup"}
    assert report["outlines"][0]["dice"]["value"] > 0.8
