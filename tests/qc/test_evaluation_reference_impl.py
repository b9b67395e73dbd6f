"""qc.evaluation.detection against a second, deliberately plain implementation.

The reference below follows LUNA16's noduleCADEvaluationLUNA16.py step by step:
a loop over scans, lesions and candidates; hits by squared distance "<" squared
radius; a FROC from sklearn's roc_curve over the non-excluded list, converted to
FP per scan and sensitivity; sensitivities read with numpy.interp. Nothing in it
is vectorised and it shares no code with the module under test. Randomised
inputs (ties between probabilities, marks on two lesions, excluded lesions,
lesions without a diameter, scans without marks or lesions) must give the same
figures to 1e-12, and one bootstrap resample must equal the reference run on the
resampled scans written out in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from qc.evaluation import bootstrap as bs
from qc.evaluation.detection import CPM_RATES, MONAI_RATES, _patients, figures_for, prepare, score
from qc.evaluation.detection_hits import Matcher, marks_of
from qc.evaluation.truth import Lesion, Scan, Truth
from qc.matching import Grid


@dataclass(frozen=True)
class Det:
    series_uid: str
    x: float
    y: float
    z: float
    probability: float
    line: int


# ------------------------------------------------------------------ the reference


def reference(truth: Truth, dets: list[Det], operating: float = 0.5) -> dict[str, float]:
    gt_list, prob_list, exclude_list = [], [], []
    for scan in truth.scans:
        candidates = {}
        for i, d in enumerate(dets):
            if d.series_uid == scan.series_uid:
                candidates[i] = d
        remaining = dict(candidates)
        for les in truth.lesions:
            if les.series_uid != scan.series_uid:
                continue
            diameter = les.diameter_mm if les.diameter_mm is not None else 10.0
            radius_squared = (diameter / 2.0) ** 2
            matches = []
            for key, c in candidates.items():
                if les.centre_mm is None:
                    continue
                x, y, z = les.centre_mm
                dist = (x - c.x) ** 2 + (y - c.y) ** 2 + (z - c.z) ** 2
                if dist < radius_squared:
                    if not les.excluded:
                        matches.append(c)
                    if key in remaining:
                        del remaining[key]
            if not les.excluded:
                gt_list.append(1.0)
                if matches:
                    prob_list.append(max(c.probability for c in matches))
                    exclude_list.append(False)
                else:
                    prob_list.append(-1.0)
                    exclude_list.append(True)
        for c in remaining.values():
            gt_list.append(0.0)
            prob_list.append(c.probability)
            exclude_list.append(False)

    n_images = len(truth.scans)
    gt_local = [g for g, e in zip(gt_list, exclude_list, strict=True) if not e]
    prob_local = [p for p, e in zip(prob_list, exclude_list, strict=True) if not e]
    detected = sum(gt_local)
    total_lesions = sum(gt_list)
    fpr, tpr, _ = roc_curve(gt_local, prob_local)
    fps = fpr * (len(prob_local) - detected) / n_images
    sens = tpr * detected / total_lesions

    out = {f"sens_at_{r:g}": float(np.interp(r, fps, sens)) for r in CPM_RATES}
    out["cpm"] = float(np.mean([np.interp(r, fps, sens) for r in CPM_RATES]))
    out["froc_score_monai"] = float(np.mean([np.interp(r, fps, sens) for r in MONAI_RATES]))
    keep = fps <= 8.0
    xs = list(fps[keep]) + [8.0]
    ys = list(sens[keep]) + [float(np.interp(8.0, fps, sens))]
    area = 0.0
    for k in range(1, len(xs)):
        area += (xs[k] - xs[k - 1]) * (ys[k] + ys[k - 1]) / 2.0
    out["froc_auc_metrics_reloaded"] = area / 8.0

    tp = sum(1 for g, p, e in zip(gt_list, prob_list, exclude_list, strict=True)
             if g == 1.0 and not e and p >= operating)  # fmt: skip
    fp = sum(1 for g, p in zip(gt_list, prob_list, strict=True) if g == 0.0 and p >= operating)
    out["sensitivity"] = tp / total_lesions
    out["fp_per_scan"] = fp / n_images
    out["f1"] = 2 * tp / (2 * tp + fp + (total_lesions - tp))

    pos_truth, pos_product = {}, {}
    for scan in truth.scans:
        p = scan.patient_id
        lesion_here = any(
            les.series_uid == scan.series_uid and not les.excluded for les in truth.lesions
        )
        marked = any(d.series_uid == scan.series_uid and d.probability >= operating for d in dets)
        pos_truth[p] = pos_truth.get(p, False) or lesion_here or scan.case_label == "positive"
        pos_product[p] = pos_product.get(p, False) or marked
    tp_p = sum(1 for p in pos_truth if pos_truth[p] and pos_product[p])
    tn_p = sum(1 for p in pos_truth if not pos_truth[p] and not pos_product[p])
    n_pos = sum(1 for p in pos_truth if pos_truth[p])
    out["patient_sensitivity"] = tp_p / n_pos if n_pos else float("nan")
    n_neg = len(pos_truth) - n_pos
    out["patient_specificity"] = tn_p / n_neg if n_neg else float("nan")
    return out


# ------------------------------------------------------------------ random inputs


def random_case(seed: int, scans: int = 12, marks: int = 15, levels: int = 20):
    """Probabilities on a coarse grid (ties), clustered lesions (marks on two)."""
    rng = np.random.default_rng(seed)
    grid = Grid.regular(40, spacing=(2.0, 1.0, 1.0), rows=128, columns=128)
    scan_list, lesions, dets = [], [], []
    line = 2
    for s in range(scans):
        uid = f"1.2.{seed}.{s}"
        scan_list.append(
            Scan(uid, f"case{s}", f"pat{s}", grid, "positive" if rng.random() < 0.15 else "")
        )
        for k in range(int(rng.integers(0, 4))):
            if k and rng.random() < 0.4:  # near the previous one: overlapping radii
                prev = lesions[-1].centre_mm
                centre = tuple(float(v + rng.normal(0, 3)) for v in prev)
            else:
                centre = tuple(float(v) for v in rng.uniform([10, 10, 5], [110, 110, 70]))
            diameter = None if rng.random() < 0.1 else float(rng.uniform(3, 25))
            lesions.append(
                Lesion(
                    f"L{s}.{k}",
                    uid,
                    f"case{s}",
                    "nodule",
                    centre,
                    diameter,
                    excluded=bool(rng.random() < 0.2),
                )
            )
            for _ in range(int(rng.integers(0, 3))):
                d = rng.normal(0, 4, 3)
                dets.append(
                    Det(
                        uid,
                        centre[0] + d[0],
                        centre[1] + d[1],
                        centre[2] + d[2],
                        float(rng.integers(0, levels + 1) / levels),
                        line,
                    )  # fmt: skip
                )
                line += 1
        if rng.random() < 0.15:
            continue  # a scan without marks
        for _ in range(int(rng.integers(0, marks))):
            p = rng.uniform([0, 0, 0], [120, 120, 78])
            dets.append(Det(uid, *map(float, p), float(rng.integers(0, levels + 1) / levels), line))
            line += 1
    truth = Truth(
        "ds", "1.0.0", "test", "centre_distance", 0.0, 3, tuple(scan_list), tuple(lesions)
    )
    return truth, dets


def vectorised(truth: Truth, dets, weights=None, operating: float = 0.5):
    marks = marks_of(truth, dets)
    sc = score(truth, marks, Matcher(truth, marks), "centre_within_radius", None)
    prep = prepare(sc, operating)
    w = np.ones((1, len(truth.scans))) if weights is None else weights
    return figures_for(prep, w, patients=_patients(truth, sc, prep.pos_op, None))


NAMES = (
    "cpm",
    "froc_score_monai",
    "froc_auc_metrics_reloaded",
    "sensitivity",
    "fp_per_scan",
    "f1",
    "patient_sensitivity",
    "patient_specificity",
) + tuple(f"sens_at_{r:g}" for r in CPM_RATES)


def _usable(truth, dets) -> bool:
    """LUNA16's script needs a hit and a false positive to build its ROC."""
    ref = reference(truth, dets)
    return np.isfinite(ref["cpm"])


@pytest.mark.parametrize("seed", range(12))
def test_matches_the_luna16_style_reference_on_random_inputs(seed):
    truth, dets = random_case(seed)
    ref = reference(truth, dets)
    got = vectorised(truth, dets)
    assert np.isfinite(ref["cpm"])
    for name in NAMES:
        assert got[name][0] == pytest.approx(ref[name], abs=1e-12, nan_ok=True), name


@pytest.mark.parametrize("seed", range(4))
def test_many_marks_and_fine_probabilities_match_too(seed):
    truth, dets = random_case(100 + seed, scans=20, marks=60, levels=1000)
    ref = reference(truth, dets, operating=0.3)
    got = vectorised(truth, dets, operating=0.3)
    for name in NAMES:
        assert got[name][0] == pytest.approx(ref[name], abs=1e-12, nan_ok=True), name


@pytest.mark.parametrize("seed", range(3))
def test_a_bootstrap_resample_equals_the_reference_on_the_resampled_scans(seed):
    truth, dets = random_case(200 + seed)
    w = bs.weights(len(truth.scans), 5, seed)
    got = vectorised(truth, dets, weights=w)
    for row in range(len(w)):
        scans, lesions, marks = [], [], []
        for s, scan in enumerate(truth.scans):
            for copy in range(int(w[row, s])):
                uid = f"{scan.series_uid}#{copy}"
                scans.append(Scan(uid, scan.case_id + f"#{copy}", scan.patient_id + f"#{copy}",
                                  scan.grid, scan.case_label))  # fmt: skip
                lesions += [
                    Lesion(
                        f"{les.lesion_id}#{copy}",
                        uid,
                        les.case_id,
                        les.finding_type,
                        les.centre_mm,
                        les.diameter_mm,
                        excluded=les.excluded,
                    )  # fmt: skip
                    for les in truth.lesions
                    if les.series_uid == scan.series_uid
                ]
                marks += [
                    Det(uid, d.x, d.y, d.z, d.probability, d.line)
                    for d in dets
                    if d.series_uid == scan.series_uid
                ]
        drawn = Truth("ds", "1", "", "centre_distance", 0.0, 3, tuple(scans), tuple(lesions))
        if not _usable(drawn, marks):
            continue
        ref = reference(drawn, marks)
        for name in NAMES:
            assert got[name][row] == pytest.approx(ref[name], abs=1e-12, nan_ok=True), name
