"""The DR grading scorer (qc.evaluation.dr) and its submission parser, on
synthetic grades: AUC against scikit-learn's roc_auc_score, the grade confusion
matrix against confusion_matrix, quadratic kappa against cohen_kappa_score,
the per-patient rule, ungradable and skipped images, every row problem with
its line and column, and the result against result.schema.json."""

from __future__ import annotations

import itertools
import math

import jsonschema
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, confusion_matrix, roc_auc_score

from export.model import CaseRecord, InstanceRecord, PackageInput, SeriesRecord
from qc.evaluation import dr, kit
from qc.evaluation.submission import SubmissionError, parse_submission, sniff


def _clean(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def make_truth(n: int = 60, seed: int = 3, ungradable: bool = True) -> dr.DRTruth:
    """n images of n/2 patients (OD and OS each), grades 0-4, some DMO, every
    11th reference ungradable (from the 6th) when `ungradable`."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        grade = "ungradable" if ungradable and i % 11 == 5 else int(rng.integers(0, 5))
        dmo = "present" if i % 9 == 0 else "absent"
        lat = "OD" if i % 2 == 0 else "OS"
        images.append(
            dr.DRImage(
                case_id=f"F{i:03d}",
                series_uid=f"2.25.{1000 + i}",
                patient_id=f"P{i // 2:03d}",
                laterality=lat,
                grade=grade,
                dmo=dmo,
                referable=None if grade == "ungradable" else dr.referable(grade, dmo),
                strata={"site": f"S{i % 3}", "manufacturer": "Topcon", "laterality": lat},
            )
        )
    return dr.DRTruth("fundus", "1.0.0", "", tuple(images))


def product_csv(truth: dr.DRTruth, *, seed: int = 7, skip: int = 2, grades=True, probs=True):
    """A plausible product: grade off by at most one, probability rising with
    the reference; the last `skip` images have no row; ungradable references
    are called ungradable (no probability)."""
    rng = np.random.default_rng(seed)
    cols = (
        ["case_id"]
        + (["dr_grade"] if grades else [])
        + (["referable_probability"] if probs else [])
    )
    rows = [",".join(cols)]
    for image in truth.images[: len(truth.images) - skip]:
        if image.grade == "ungradable":
            if not grades:
                continue  # a probability-only product gives no row for what it cannot grade
            g, p = "ungradable", ""
        else:
            g = int(np.clip(image.grade + rng.integers(-1, 2), 0, 4))
            p = f"{float(np.clip(image.grade / 4 + rng.normal(0, 0.25), 0, 1)):.4f}"
        rows.append(
            ",".join([image.case_id] + ([str(g)] if grades else []) + ([p] if probs else []))
        )
    return ("\n".join(rows) + "\n").encode()


# --------------------------------------------------------------------------- math


def test_referable_rule_matches_the_schemas_derived_field():
    from annotation_server.reading.derived import referable_dr

    definition = {
        "case_fields": [
            {"key": "dr_grade", "kind": "ordinal", "min": 0, "max": 4, "referable_from": 2}
        ]
    }
    item = {"inputs": {"grade": "dr_grade", "oedema": "dmo", "oedema_present": "present"}}
    for grade, dmo in itertools.product(
        [0, 1, 2, 3, 4, "ungradable", None], [*dr.DMO_VALUES, None]
    ):
        expected = referable_dr(item, definition, {"dr_grade": grade, "dmo": dmo}, [])
        assert dr.referable(grade, dmo, 2) == expected, (grade, dmo)


def test_auc_and_matrix_and_kappa_equal_scikit_learn():
    truth = make_truth()
    parsed = parse_submission(product_csv(truth), truth)
    assert parsed.kind == "dr_grading" and parsed.columns == ("grade", "probability")
    result = kit.evaluate(truth, parsed, operating_threshold=0.5, bootstrap=300, seed=1)
    scored = [e for e in result["images"] if e["scored"]]
    y = [e["reference_referable"] for e in scored]
    s = [e["probability"] for e in scored]
    assert result["figures"]["auc"]["value"] == pytest.approx(roc_auc_score(y, s))
    lo, hi = result["figures"]["auc"]["ci"]
    assert lo < result["figures"]["auc"]["value"] < hi

    pairs = [
        (e["reference_grade"], e["predicted_grade"])
        for e in result["images"]
        if isinstance(e["reference_grade"], int) and isinstance(e["predicted_grade"], int)
    ]
    ref, pred = zip(*pairs, strict=True)
    kappa = cohen_kappa_score(ref, pred, weights="quadratic")
    assert result["figures"]["quadratic_kappa"]["value"] == pytest.approx(kappa)
    klo, khi = result["figures"]["quadratic_kappa"]["ci"]
    assert klo <= kappa <= khi and khi - klo < 0.5
    # the vectorised kappa used for the bootstrap is the same formula
    assert dr.kappa_from_matrices(dr.grade_matrix(ref, pred)) == pytest.approx(kappa)

    counts = np.asarray(result["grading"]["confusion_matrix"]["counts"])
    assert counts.shape == (6, 7)
    np.testing.assert_array_equal(
        counts[:5, :5], confusion_matrix(ref, pred, labels=[0, 1, 2, 3, 4])
    )
    # the reference-ungradable row: what the product said of them
    n_ungradable = sum(1 for i in truth.images if i.grade == "ungradable")
    assert counts[5].sum() == n_ungradable == result["counts"]["reference_ungradable"]
    # the two skipped images sit in the "not given" column
    assert counts[:, 6].sum() == 2 == result["counts"]["skipped"]
    assert any(w.code == "skipped_images" and w.params["count"] == 2 for w in parsed.warnings)

    # sensitivity / specificity at the threshold, with Wilson intervals
    called = np.asarray(s) >= 0.5
    yy = np.asarray(y, dtype=bool)
    sens = (called & yy).sum() / yy.sum()
    spec = (~called & ~yy).sum() / (~yy).sum()
    assert result["figures"]["sensitivity"]["value"] == pytest.approx(sens)
    assert result["figures"]["specificity"]["value"] == pytest.approx(spec)
    from statsmodels.stats.proportion import proportion_confint

    w = proportion_confint(int((called & yy).sum()), int(yy.sum()), method="wilson")
    assert result["figures"]["sensitivity"]["ci"] == pytest.approx(list(w))
    # grade cut-off too, as both were given
    cut = np.array([e["predicted_grade"] >= 2 for e in scored])
    assert result["figures"]["grade_sensitivity"]["value"] == pytest.approx(
        (cut & yy).sum() / yy.sum()
    )
    jsonschema.validate(_clean(result), kit.schema())


def test_per_patient_auc_is_the_max_over_the_patients_images():
    truth = make_truth(n=40, ungradable=False)
    parsed = parse_submission(product_csv(truth, skip=0, grades=False), truth)
    result = kit.evaluate(truth, parsed, operating_threshold=0.4, bootstrap=0)
    by_patient: dict[str, list] = {}
    for e in result["images"]:
        if e["scored"]:
            by_patient.setdefault(e["patient_id"], []).append(e)
    y = [any(e["reference_referable"] for e in v) for v in by_patient.values()]
    s = [max(e["probability"] for e in v) for v in by_patient.values()]
    assert result["figures"]["patient_auc"]["value"] == pytest.approx(roc_auc_score(y, s))
    called = np.asarray(s) >= 0.4
    yy = np.asarray(y)
    assert result["figures"]["patient_sensitivity"]["value"] == pytest.approx(
        (called & yy).sum() / yy.sum()
    )
    assert result["counts"]["scored_patients"] == len(by_patient) == 20
    assert "quadratic_kappa" not in result["figures"]  # no grades given
    assert result["conventions"]["patient_rule"].startswith("patient score = maximum")


def test_grades_only_score_is_the_grade_and_dmo_raises_it_to_the_cutoff():
    truth = make_truth(n=30, ungradable=False)
    rows = ["case_id,dr_grade,dmo"]
    for i, image in enumerate(truth.images):
        # image 0 (reference DMO present) graded 1 with DMO; the rest echo the reference
        dmo = "present" if i == 0 else image.dmo
        rows.append(f"{image.case_id},{1 if i == 0 else image.grade},{dmo}")
    parsed = parse_submission(("\n".join(rows) + "\n").encode(), truth)
    assert parsed.columns == ("grade", "dmo")
    result = kit.evaluate(truth, parsed, operating_threshold=0.5, bootstrap=50)
    first = result["images"][0]
    assert first["predicted_grade"] == 1 and first["score"] == 2.0  # DMO present: referable
    assert result["grading"]["threshold_source"] == "grade cut-off"
    assert result["grading"]["threshold"] == 2.0
    assert result["conventions"]["operating_threshold"] is None
    # a perfect grader (except image 0's grade, still referable through DMO)
    assert result["figures"]["grade_sensitivity"]["value"] == pytest.approx(1.0)
    assert result["figures"]["quadratic_kappa"]["value"] == pytest.approx(
        cohen_kappa_score(
            [i.grade for i in truth.images],
            [1] + [i.grade for i in truth.images[1:]],
            labels=[0, 1, 2, 3, 4],  # the whole scale, present or not
            weights="quadratic",
        )
    )


def test_images_without_a_product_grade_are_referred_in_the_screening_figures():
    truth = make_truth(n=20, ungradable=False)
    referable = [i for i in truth.images if i.referable]
    # the product skips one referable image and grades everything else perfectly
    rows = ["case_id,dr_grade"] + [
        f"{i.case_id},{i.grade if not (i.dmo == 'present' and i.grade < 2) else 2}"
        for i in truth.images
        if i is not referable[0]
    ]
    result = kit.evaluate(truth, parse_submission(("\n".join(rows)).encode(), truth), bootstrap=0)
    assert result["figures"]["sensitivity"]["value"] == pytest.approx(1.0)
    assert result["figures"]["sensitivity_ungradable_referred"]["value"] == pytest.approx(1.0)
    assert result["grading"]["referable_tables"]["ungradable_referred"]["tp"] == len(referable)
    assert result["counts"]["scored_images"] == len(truth.images) - 1


# --------------------------------------------------------------------------- parser


def test_every_row_problem_names_its_line_and_column():
    truth = make_truth(n=10)
    bad = (
        b"case_id,dr_grade,referable_probability,dmo\n"
        b"F000,7,0.5,absent\n"  # 2: grade out of range
        b"NOPE,1,0.2,absent\n"  # 3: unknown image
        b"F001,,0.3,absent\n"  # 4: grade missing
        b"F002,2,,absent\n"  # 5: probability missing
        b"F003,2,1.5,absent\n"  # 6: probability out of range
        b"F004,2,0.7,maybe\n"  # 7: DMO value
        b"F004,2,0.7,absent\n"  # 8: second row for F004
        b"F006,2\n"  # 9: too few fields
        b"F007,ungradable,,\n"  # fine: ungradable needs no probability
    )
    with pytest.raises(SubmissionError) as err:
        parse_submission(bad, truth, "dr_grading")
    got = [(p.line, p.code, p.params.get("column")) for p in err.value.problems]
    assert got == [
        (2, "grade_range", "dr_grade"),
        (3, "unknown_case", "case_id"),
        (4, "missing_value", "dr_grade"),
        (5, "missing_value", "referable_probability"),
        (6, "probability_range", "referable_probability"),
        (7, "dmo_value", "dmo"),
        (8, "duplicate_row", None),
        (9, "missing_columns", None),
    ]


def test_header_needs_an_image_column_and_a_grade_or_probability():
    truth = make_truth(n=4)
    with pytest.raises(SubmissionError) as err:
        parse_submission(b"case_id,dmo,colour\nF000,absent,red\n", truth, "dr_grading")
    codes = {p.code for p in err.value.problems}
    assert codes == {"missing_columns", "extra_columns"}
    assert err.value.problems[0].params["missing"] == ["dr_grade|referable_probability"]


def test_series_rows_name_their_image_and_sniffing_finds_dr():
    truth = make_truth(n=6, ungradable=False)
    data = "seriesuid,grade\n" + "\n".join(f"{i.series_uid},{i.grade}" for i in truth.images)
    assert sniff(data.encode()) == "dr_grading"
    assert sniff(b"case_id,probability\nx,0.1\n") == "classification"
    parsed = parse_submission(data.encode(), truth)
    assert [g.case_id for g in parsed.grades] == [i.case_id for i in truth.images]
    with pytest.raises(SubmissionError) as err:
        parse_submission(b"seriesuid,grade\n9.9.9,2\n", truth)
    assert (err.value.problems[0].code, err.value.problems[0].params["column"]) == (
        "unknown_series",
        "seriesuid",
    )


def test_truth_from_a_package_input_reads_grades_dmo_and_excludes_retired(tmp_path):
    def case(code, patient, split="test", retired=False):
        series = SeriesRecord(
            series_uid=f"2.25.{code}",
            study_uid=f"2.25.9{patient}",
            modality="OP",
            manufacturer="Topcon",
            instances=(
                InstanceRecord(
                    f"2.25.7{code}", "1.2.840.10008.5.1.4.1.1.77.1.5.1", 0, "x", "0" * 64
                ),
            ),
        )
        return CaseRecord(code, f"P{patient}", "S1", (series,), split=split, retired=retired)

    inp = PackageInput(
        dataset_id="fundus",
        version="1.0.0",
        title="",
        description="",
        frozen_at="",
        modality="OP",
        body_part="EYE",
        tool_version="RefSet",
        protocol={},
        schema={"case_fields": [{"key": "dr_grade", "referable_from": 3}]},
        deid_profile={},
        qc_profile={},
        cases=(case("1", 1), case("2", 1), case("3", 2, retired=True), case("4", 3, "train")),
        case_labels={
            "1": {"dr_grade": 2, "dmo": "absent"},
            "2": {"dr_grade": "ungradable", "dmo": "present"},
            "4": {"dr_grade": 4},
        },
    )
    truth = dr.dr_truth_from_package(inp, "test", laterality={"2.25.1": "OD"})
    assert [i.case_id for i in truth.images] == ["1", "2"]
    assert truth.referable_from == 3
    first, second = truth.images
    assert (first.grade, first.referable, first.laterality) == (2, False, "OD")
    assert (second.grade, second.referable, second.strata["laterality"]) == (
        "ungradable",
        None,
        "unknown",
    )
    assert dr.is_dr_schema(inp.schema) and not dr.is_dr_schema({"case_fields": []})


def test_a_referable_eye_the_product_skipped_still_makes_its_patient_referable():
    def image(i, patient, grade):
        return dr.DRImage(f"E{i}", f"2.25.{i}", patient, grade=grade, dmo="absent",
                          referable=dr.referable(grade, "absent"))  # fmt: skip

    truth = dr.DRTruth(
        "fundus",
        "1.0.0",
        "",
        (
            image(0, "A", 3),  # referable, skipped by the product
            image(1, "A", 0),
            image(2, "B", 0),
            image(3, "B", 0),
            image(4, "C", 2),
            image(5, "C", 1),
        ),
    )
    data = b"case_id,referable_probability\nE1,0.3\nE2,0.1\nE3,0.2\nE4,0.8\nE5,0.4\n"
    result = kit.evaluate(truth, parse_submission(data, truth), operating_threshold=0.5)
    # per patient: A (referable, score 0.3), B (not, 0.2), C (referable, 0.8)
    assert result["figures"]["patient_auc"]["value"] == pytest.approx(
        roc_auc_score([True, False, True], [0.3, 0.2, 0.8])
    )
    assert result["grading"]["referable_tables"]["patient"] == {"tp": 1, "fn": 1, "tn": 1, "fp": 0}
    assert result["counts"]["referable_patients"] == 2 and result["counts"]["skipped"] == 1


def dmo_truth(n: int = 48) -> dr.DRTruth:
    """Images with every kind of reference DMO: present every 4th, ungradable
    every 10th (from the 3rd), missing every 13th (from the 7th)."""
    images = []
    for i in range(n):
        dmo = "present" if i % 4 == 0 else "absent"
        if i % 10 == 3:
            dmo = "ungradable"
        if i % 13 == 7:
            dmo = None
        images.append(
            dr.DRImage(
                f"D{i:03d}",
                f"2.25.{5000 + i}",
                f"P{i // 2:03d}",
                grade=i % 5,
                dmo=dmo,
                referable=dr.referable(i % 5, dmo),
            )  # fmt: skip
        )
    return dr.DRTruth("fundus", "1.0.0", "", tuple(images))


def dmo_csv(truth: dr.DRTruth, *, label=True, probability=True, seed=5) -> bytes:
    """Grade plus the product's DMO: a probability rising with the reference,
    its call at 0.4; image 1 called ungradable (with a dmo column), image 2 with
    no DMO call (only without a probability column), the last image skipped."""
    rng = np.random.default_rng(seed)
    cols = ["case_id", "dr_grade"] + (["dmo"] if label else [])
    cols += ["dmo_probability"] if probability else []
    rows = [",".join(cols)]
    for i, image in enumerate(truth.images[:-1]):
        p = float(np.clip((image.dmo == "present") * 0.5 + rng.normal(0.25, 0.2), 0, 1))
        call = "present" if p >= 0.4 else "absent"
        if i == 1 and label:
            call, p = "ungradable", None
        if i == 2 and not probability:
            call = ""
        cells = [image.case_id, str(image.grade)]
        cells += [call] if label else []
        cells += ["" if p is None else f"{p:.4f}"] if probability else []
        rows.append(",".join(cells))
    return ("\n".join(rows) + "\n").encode()


def test_macular_oedema_figures_from_a_probability_and_a_call_equal_scikit_learn():
    truth = dmo_truth()
    parsed = parse_submission(dmo_csv(truth), truth)
    assert parsed.columns == ("grade", "dmo", "dmo_probability")
    result = kit.evaluate(truth, parsed, bootstrap=50, seed=1)
    figures, counts = result["figures"], result["counts"]
    by_case = {r.case_id: r for r in parsed.grades}
    scored = [
        (i.dmo == "present", by_case[i.case_id])
        for i in truth.images
        if i.dmo in ("absent", "present")
        and i.case_id in by_case
        and by_case[i.case_id].dmo != "ungradable"
    ]
    y = [p for p, _ in scored]
    s = [r.dmo_probability for _, r in scored]
    called = [r.dmo == "present" for _, r in scored]
    assert figures["dmo_auc"]["value"] == pytest.approx(roc_auc_score(y, s))
    lo, hi = figures["dmo_auc"]["ci"]
    assert lo <= figures["dmo_auc"]["value"] <= hi
    tp = sum(a and b for a, b in zip(y, called, strict=True))
    tn = sum(not a and not b for a, b in zip(y, called, strict=True))
    assert figures["dmo_sensitivity"]["value"] == pytest.approx(tp / sum(y))
    assert figures["dmo_specificity"]["value"] == pytest.approx(tn / (len(y) - sum(y)))
    ungradable = sum(i.dmo == "ungradable" for i in truth.images)
    missing = sum(i.dmo is None for i in truth.images)
    gradable = len(truth.images) - ungradable - missing
    assert (counts["reference_dmo_ungradable"], counts["reference_dmo_missing"]) == (
        ungradable,
        missing,
    )
    assert counts["dmo_reference_images"] == gradable
    assert counts["product_dmo_ungradable"] == 1  # image 1
    assert counts["product_dmo_not_given"] == 1  # the skipped last image
    assert counts["dmo_scored_images"] == len(y) == gradable - 2
    table = result["grading"]["dmo"]["tables"]["image"]
    assert table == {"tp": tp, "fn": sum(y) - tp, "tn": tn, "fp": len(y) - sum(y) - tn}
    assert result["grading"]["dmo"]["score_source"] == "probability"
    # the screening form: images without a DMO output are called present
    itt = result["grading"]["dmo"]["tables"]["ungradable_referred"]
    assert sum(itt.values()) == gradable
    assert itt["tp"] + itt["fp"] == table["tp"] + table["fp"] + 2
    assert "dmo_reference" in result["conventions"]
    assert result["curves"]["dmo_roc"]["fpr"]
    from qc.evaluation import figures as plots

    drawn = plots.figures(result, "svg")
    assert "dmo_roc" in drawn and b"Macular oedema: ROC curve" in drawn["dmo_roc"]
    # DR figures are untouched by the DMO columns
    assert figures["quadratic_kappa"]["value"] is not None
    jsonschema.validate(_clean(result), kit.schema())


def test_macular_oedema_from_the_call_alone_scores_the_call():
    truth = dmo_truth()
    parsed = parse_submission(dmo_csv(truth, probability=False), truth)
    result = kit.evaluate(truth, parsed, bootstrap=50, seed=1)
    by_case = {r.case_id: r for r in parsed.grades}
    pairs = [
        (i.dmo == "present", by_case[i.case_id].dmo == "present")
        for i in truth.images
        if i.dmo in ("absent", "present")
        and by_case.get(i.case_id) is not None
        and by_case[i.case_id].dmo in ("absent", "present")
    ]
    y, called = zip(*pairs, strict=True)
    assert result["figures"]["dmo_auc"]["value"] == pytest.approx(roc_auc_score(y, called))
    assert result["grading"]["dmo"]["score_source"] == "call"
    assert result["counts"]["product_dmo_not_given"] == 2  # image 2's empty call, the skipped


def test_macular_oedema_probability_alone_calls_at_one_half():
    truth = dmo_truth()
    parsed = parse_submission(dmo_csv(truth, label=False), truth)
    result = kit.evaluate(truth, parsed, bootstrap=50, seed=1)
    by_case = {r.case_id: r for r in parsed.grades}
    pairs = [
        (i.dmo == "present", by_case[i.case_id].dmo_probability)
        for i in truth.images
        if i.dmo in ("absent", "present") and by_case.get(i.case_id) is not None
    ]
    y = [a for a, _ in pairs]
    called = [p >= dr.DMO_THRESHOLD for _, p in pairs]
    tp = sum(a and b for a, b in zip(y, called, strict=True))
    assert result["figures"]["dmo_sensitivity"]["value"] == pytest.approx(tp / sum(y))


def test_patient_dmo_figures_equal_an_independent_per_patient_computation():
    truth = dmo_truth()
    parsed = parse_submission(dmo_csv(truth), truth)
    result = kit.evaluate(truth, parsed, bootstrap=20, seed=1)
    by_case = {r.case_id: r for r in parsed.grades}
    present: dict[str, bool] = {}  # patients with a gradable reference DMO
    scores: dict[str, list[tuple[float, bool]]] = {}  # their (probability, call) pairs
    for image in truth.images:
        if image.dmo not in ("absent", "present"):
            continue
        pid = image.patient_id
        present[pid] = present.get(pid, False) or image.dmo == "present"
        row = by_case.get(image.case_id)
        if row is not None and row.dmo_probability is not None:
            scores.setdefault(pid, []).append((row.dmo_probability, row.dmo == "present"))
    ids = sorted(scores)
    y = [present[p] for p in ids]
    s = [max(v for v, _ in scores[p]) for p in ids]
    called = [any(c for _, c in scores[p]) for p in ids]
    figures, counts = result["figures"], result["counts"]
    assert figures["dmo_patient_auc"]["value"] == pytest.approx(roc_auc_score(y, s))
    lo, hi = figures["dmo_patient_auc"]["ci"]
    assert lo <= figures["dmo_patient_auc"]["value"] <= hi
    tp = sum(a and b for a, b in zip(y, called, strict=True))
    tn = sum(not a and not b for a, b in zip(y, called, strict=True))
    assert result["grading"]["dmo"]["tables"]["patient"] == {
        "tp": tp,
        "fn": sum(y) - tp,
        "tn": tn,
        "fp": len(y) - sum(y) - tn,
    }
    assert figures["dmo_patient_sensitivity"]["value"] == pytest.approx(tp / sum(y))
    assert figures["dmo_patient_specificity"]["value"] == pytest.approx(tn / (len(y) - sum(y)))
    assert counts["dmo_reference_patients"] == len(present)
    assert counts["dmo_scored_patients"] == len(ids) < counts["dmo_reference_images"]
    assert counts["dmo_present_patients"] == sum(y)
    # the patient figures are not the image figures under another name
    assert counts["dmo_scored_patients"] < counts["dmo_scored_images"]
    assert result["conventions"]["dmo_patient_rule"].startswith("patient DMO score = maximum")
    jsonschema.validate(_clean(result), kit.schema())


def test_patient_dmo_table_counted_by_hand_with_a_skipped_eye_and_no_gradable_reference():
    def image(i, patient, dmo):
        return dr.DRImage(f"E{i}", f"2.25.{i}", patient, grade=1, dmo=dmo,
                          referable=dr.referable(1, dmo))  # fmt: skip

    truth = dr.DRTruth(
        "fundus",
        "1.0.0",
        "",
        (
            image(0, "A", "present"),  # skipped by the product: still makes A positive
            image(1, "A", "absent"),
            image(2, "B", "absent"),
            image(3, "B", "absent"),
            image(4, "C", "present"),
            image(5, "C", "absent"),
            image(6, "D", "absent"),
            image(7, "D", "absent"),
            image(8, "E", "ungradable"),  # E: no gradable reference DMO at all
            image(9, "E", None),
            image(10, "F", "absent"),  # F: gradable, but the product gave no DMO
            image(11, "F", "absent"),
            image(12, "G", "present"),  # called present below one half: the call counts
            image(13, "G", "absent"),
        ),
    )
    data = (
        b"case_id,referable_probability,dmo,dmo_probability\n"
        b"E1,0.2,absent,0.2\n"
        b"E2,0.1,absent,0.1\n"
        b"E3,0.1,absent,0.3\n"
        b"E4,0.9,present,0.9\n"
        b"E5,0.6,present,0.6\n"
        b"E6,0.7,present,0.7\n"
        b"E7,0.2,absent,0.2\n"
        b"E8,0.8,present,0.8\n"
        b"E9,0.8,present,0.8\n"
        b"E10,0.1,ungradable,\n"
        b"E11,0.1,ungradable,\n"
        b"E12,0.4,present,0.4\n"
        b"E13,0.45,absent,0.45\n"
    )
    result = kit.evaluate(truth, parse_submission(data, truth), bootstrap=0)
    # per patient (scored): A present 0.2 called absent (FN), B absent 0.3 (TN),
    # C present 0.9 called (TP), D absent 0.7 called (FP), G present 0.45 called (TP)
    assert result["grading"]["dmo"]["tables"]["patient"] == {"tp": 2, "fn": 1, "tn": 1, "fp": 1}
    figures, counts = result["figures"], result["counts"]
    # positives 0.2, 0.9, 0.45 against negatives 0.3, 0.7: 3 of 6 pairs ordered
    assert figures["dmo_patient_auc"]["value"] == pytest.approx(0.5)
    assert figures["dmo_patient_auc"]["value"] == pytest.approx(
        roc_auc_score([True, False, True, False, True], [0.2, 0.3, 0.9, 0.7, 0.45])
    )
    from statsmodels.stats.proportion import proportion_confint

    assert figures["dmo_patient_sensitivity"]["value"] == pytest.approx(2 / 3)
    assert figures["dmo_patient_sensitivity"]["ci"] == pytest.approx(
        list(proportion_confint(2, 3, method="wilson"))
    )
    assert figures["dmo_patient_specificity"]["value"] == pytest.approx(1 / 2)
    assert figures["dmo_patient_specificity"]["ci"] == pytest.approx(
        list(proportion_confint(1, 2, method="wilson"))
    )
    # E left out (no gradable reference DMO), F left out (no DMO-scored image)
    assert counts["patients"] == 7
    assert counts["dmo_reference_patients"] == 6
    assert counts["dmo_scored_patients"] == 5
    assert counts["dmo_present_patients"] == 3
    # the image table is another thing: E0 (skipped) is not in it, E5 is a false positive
    assert result["grading"]["dmo"]["tables"]["image"] == {"tp": 2, "fn": 0, "tn": 5, "fp": 2}


def test_no_dmo_column_no_dmo_figures():
    truth = make_truth()
    result = kit.evaluate(truth, parse_submission(product_csv(truth), truth), bootstrap=20)
    assert not any(k.startswith("dmo_") for k in result["figures"])
    assert "dmo" not in result["grading"] and "dmo_reference" not in result["conventions"]
    from qc.evaluation import figures as plots

    assert "dmo_roc" not in plots.figures(result, "svg")


def test_dmo_probability_problems_name_their_line():
    truth = dmo_truth(8)
    data = (
        b"case_id,dr_grade,dmo,dmo_probability\n"
        b"D000,1,present,0.9\n"
        b"D001,1,absent,\n"  # empty where the call is not ungradable
        b"D002,1,ungradable,\n"  # fine: no probability for an ungradable call
        b"D003,1,absent,1.5\n"
        b"D004,1,absent,x\n"
    )
    with pytest.raises(SubmissionError) as caught:
        parse_submission(data, truth)
    found = {(p.line, p.code, p.params.get("column")) for p in caught.value.problems}
    assert found == {
        (3, "missing_value", "dmo_probability"),
        (5, "probability_range", "dmo_probability"),
        (6, "not_a_number", "dmo_probability"),
    }


def test_truth_takes_laterality_and_referable_dr_as_frozen_in_the_package_input():
    from export.model import ReferenceLabelsRecord

    def case(code, side):
        inst = InstanceRecord(f"2.25.7{code}", "1.2.840.10008.5.1.4.1.1.77.1.5.1", 0, "x",
                              "0" * 64, laterality=side)  # fmt: skip
        series = SeriesRecord(f"2.25.{code}", "2.25.9", "OP", instances=(inst,))
        return CaseRecord(code, "P1", "S1", (series,), split="test")

    inp = PackageInput(
        dataset_id="fundus", version="1.0.0", title="", description="", frozen_at="",
        modality="OP", body_part="EYE", tool_version="RefSet", protocol={},
        schema={"case_fields": [{"key": "dr_grade", "referable_from": 2}]}, deid_profile={},
        qc_profile={}, cases=(case("1", "R"), case("2", "L"), case("3", "")),
        case_labels={c: {"dr_grade": 1, "dmo": "absent"} for c in ("1", "2", "3")},
        reference_labels={"1": ReferenceLabelsRecord("1", 1, "arbitrated", {"referable_dr": True})},
    )  # fmt: skip
    truth = dr.dr_truth_from_package(inp)
    assert [i.laterality for i in truth.images] == ["OD", "OS", ""]
    # case 1's frozen derived field stands; the others are derived by the rule
    assert [i.referable for i in truth.images] == [True, False, False]
