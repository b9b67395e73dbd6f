"""kit.evaluate and compare(): whole results, validated against result.schema.json."""

from __future__ import annotations

import hashlib
import json

import jsonschema
import numpy as np
import pytest

from qc.evaluation import kit
from qc.evaluation.compare import auc_rows, compare
from qc.evaluation.submission import Parsed, SegLesion, parse_submission
from qc.evaluation.truth import Lesion, Scan, Truth
from qc.matching import Grid
from qc.raster import rasterise

GRID = Grid.regular(30, rows=80, columns=80, slice_thickness=1.0)


def _truth(n=16, seed=0):
    rng = np.random.default_rng(seed)
    scans, lesions = [], []
    for i in range(n):
        uid = f"1.2.3.{i}"
        scans.append(
            Scan(
                uid,
                f"C{i}",
                f"P{i}",
                GRID,
                ("", "positive", "negative")[i % 3],
                {"site": "AB"[i % 2], "manufacturer": "GE", "slice_thickness": "<=1 mm"},
            )  # fmt: skip
        )
        for k in range(int(rng.integers(0, 3))):
            c = [float(v) for v in rng.integers([15, 15, 5], [65, 65, 25])]
            geometry = {
                "kind": "ellipse",
                "shapes": [
                    {
                        "slice_index": int(c[2]) + d,
                        "points": [[c[0] - 4, c[1] - 4], [c[0] + 4, c[1] + 4]],
                    }
                    for d in (-1, 0, 1)
                ],  # fmt: skip
                "centre_mm": c,
            }
            lesions.append(
                Lesion(
                    f"L{i}.{k}",
                    uid,
                    f"C{i}",
                    "nodule",
                    tuple(c),
                    8.0,
                    geometry,
                    excluded=k == 1 and i % 4 == 0,
                    readers=2,
                    strata={"finding_type": "nodule", "size": "6-8 mm", "agreement": "fewer"},
                )  # fmt: skip
            )
    return Truth("lung", "1.2.0", "test", "centre_in_contour", 0.0, 3, tuple(scans),
                 tuple(lesions), manifest_sha256="ab" * 32)  # fmt: skip


def _csv(truth, seed=1, per_scan=8, extra_on=None):
    rng = np.random.default_rng(seed)
    rows = ["seriesuid,coordX,coordY,coordZ,probability"]
    for s in truth.scans:
        for les in truth.lesions:
            if les.series_uid == s.series_uid and rng.random() < 0.8:
                x, y, z = les.centre_mm
                rows.append(f"{s.series_uid},{x + 1},{y},{z},{rng.uniform(0.3, 1):.4f}")
        n = 105 if s.series_uid == extra_on else per_scan
        for _ in range(n):
            x, y, z = rng.uniform([1, 1, 1], [78, 78, 28])
            rows.append(f"{s.series_uid},{x:.2f},{y:.2f},{z:.2f},{rng.random() ** 2:.4f}")
    return ("\n".join(rows) + "\n").encode()


def _valid(result):
    jsonschema.validate(result, kit.schema())
    text = json.dumps(result, allow_nan=False)  # JSON-ready, no NaN or numpy types
    return json.loads(text)


def test_a_detection_result_is_complete_and_follows_the_schema():
    truth = _truth()
    data = _csv(truth, extra_on="1.2.3.0")
    parsed = parse_submission(data, truth)
    r = kit.evaluate(truth, parsed, product="NoduleFinder 2", bootstrap=50, seed=3)
    _valid(r)
    assert r["kit_version"] == kit.KIT_VERSION and r["kind"] == "detection"
    assert r["product"] == "NoduleFinder 2"
    assert r["dataset"] == {"id": "lung", "version": "1.2.0", "split": "test",
                            "manifest_sha256": "ab" * 32}  # fmt: skip
    assert r["submission"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert [w["code"] for w in r["submission"]["warnings"]] == ["too_many_marks"]
    conv = r["conventions"]
    assert conv["rule"] == conv["declared_rule"] == "centre_in_contour"
    assert conv["bootstrap"] == {"resamples": 50, "seed": 3, "unit": "scan",
                                 "interval": "percentile 95%"}  # fmt: skip
    for key in ("excluded_findings", "multiple_hits", "froc_fp_rates", "cpm",
                "froc_score_monai", "froc_auc_metrics_reloaded", "max_marks_per_scan"):  # fmt: skip
        assert isinstance(conv[key], str) and conv[key], key
    assert set(r["figures"]) >= {"cpm", "froc_score_monai", "froc_auc_metrics_reloaded",
                                 "sens_at_0.125", "sens_at_8", "patient_specificity"}  # fmt: skip
    assert [e["declared"] for e in r["rules"]] == [True, False, False]
    assert set(r["strata"]) == {"site", "manufacturer", "slice_thickness", "finding_type",
                                "size", "agreement"}  # fmt: skip
    cut = parsed.warnings[0].params["marks"] - 100
    assert r["counts"]["marks"] == len(parsed.detections) == parsed.rows - cut
    assert len(r["lesions"]) == len(truth.lesions)
    assert len(r["curves"]["froc"]["ci_low"]) == len(r["curves"]["froc"]["fp_per_scan"])


def test_the_schema_rejects_a_result_without_its_conventions():
    truth = _truth()
    r = kit.evaluate(truth, parse_submission(_csv(truth), truth), bootstrap=0)
    _valid(r)
    broken = dict(r)
    del broken["conventions"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, kit.schema())
    broken = json.loads(json.dumps(r))
    broken["figures"]["cpm"] = {"value": "high"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, kit.schema())


def test_a_classification_result_follows_the_schema():
    truth = _truth()
    rng = np.random.default_rng(5)
    rows = ["case_id,probability"] + [f"C{i},{rng.random():.3f}" for i in range(len(truth.scans))]
    parsed = parse_submission(("\n".join(rows) + "\n").encode(), truth)
    r = _valid(kit.evaluate(truth, parsed, bootstrap=40, seed=1))
    assert r["kind"] == "classification"
    assert r["conventions"]["declared_rule"] == "centre_in_contour"
    assert 0.0 <= r["figures"]["auc"]["value"] <= 1.0


def test_a_segmentation_result_follows_the_schema():
    truth = _truth()
    segments = []
    for les in truth.lesions[:3]:
        shapes = [(sh["slice_index"], sh["points"]) for sh in les.geometry["shapes"]]
        segments.append(SegLesion(les.series_uid, 1, "nodule", rasterise("ellipse", shapes), None))
    parsed = Parsed(kind="segmentation", sha256="cd" * 32, segments=tuple(segments), rows=3)
    r = _valid(kit.evaluate(truth, parsed, bootstrap=20))
    assert r["kind"] == "segmentation" and r["submission"]["sha256"] == "cd" * 32


def test_comparing_a_detection_submission_with_itself_gives_zero():
    truth = _truth()
    parsed = parse_submission(_csv(truth), truth)
    r = _valid(compare(truth, parsed, parsed, bootstrap=200, seed=2))
    d = r["difference"]
    assert d["metric"] == "cpm" and d["value"] == 0.0 and d["ci"] == [0.0, 0.0]
    assert d["p"] == 1.0 and d["a"] == d["b"]
    single = kit.evaluate(truth, parsed, bootstrap=0)
    assert d["a"] == single["figures"]["cpm"]["value"]


def test_comparing_two_detection_submissions_is_paired():
    truth = _truth(n=30)
    a = parse_submission(_csv(truth, seed=1), truth)
    b = parse_submission(_csv(truth, seed=2, per_scan=30), truth)
    r = _valid(compare(truth, a, b, bootstrap=300, seed=4))
    d = r["difference"]
    ca = kit.evaluate(truth, a, bootstrap=0)["figures"]["cpm"]["value"]
    cb = kit.evaluate(truth, b, bootstrap=0)["figures"]["cpm"]["value"]
    assert d["a"] == ca and d["b"] == cb and d["value"] == pytest.approx(ca - cb, abs=1e-15)
    assert d["ci"][0] <= d["value"] <= d["ci"][1]
    assert 0.0 <= d["p"] <= 1.0
    assert r["submission"]["a"]["sha256"] != r["submission"]["b"]["sha256"]
    again = compare(truth, a, b, bootstrap=300, seed=4)
    assert again == r


def test_comparing_classification_submissions_uses_auc():
    from qc.evaluation.classification import delong

    truth = _truth(n=40)
    rng = np.random.default_rng(9)
    cases = [f"C{i}" for i in range(40)]

    def parsed(scores):
        rows = ["case_id,probability"] + [
            f"{c},{s:.3f}" for c, s in zip(cases, scores, strict=True)
        ]
        return parse_submission(("\n".join(rows) + "\n").encode(), truth)

    a = parsed(rng.random(40))
    b = parsed(np.round(rng.random(40), 1))  # ties
    same = _valid(compare(truth, a, a, bootstrap=100))
    assert same["difference"]["value"] == 0.0 and same["difference"]["p"] == 1.0
    r = _valid(compare(truth, a, b, bootstrap=100))
    from qc.evaluation.classification import case_truth

    _, y = case_truth(truth)
    sb = np.array([s.probability for s in sorted(b.scores, key=lambda s: cases.index(s.case_id))])
    assert r["difference"]["metric"] == "auc"
    assert r["difference"]["b"] == pytest.approx(delong(y, sb)[0], abs=1e-12)
    assert 0.0 <= r["difference"]["p_delong"] <= 1.0


def test_auc_rows_is_mann_whitney_with_ties_half():
    y = np.array([[1, 0, 1, 0, 1]], dtype=bool)
    s = np.array([[0.9, 0.5, 0.5, 0.1, 0.4]])
    # pairs (pos, neg): .9>.5 .9>.1 | .5=.5 .5>.1 | .4<.5 .4>.1  -> 1+1+.5+1+0+1 = 4.5 of 6
    assert auc_rows(y, s)[0] == pytest.approx(4.5 / 6)
    assert np.isnan(auc_rows(np.ones((1, 3), dtype=bool), np.zeros((1, 3)))[0])
