"""The built-in lung-nodule model: finds planted nodules, proposes valid
readers' geometry, trains reproducibly in a bounded mode, and is scored right."""

from __future__ import annotations

import numpy as np
import pytest

from annotation_server.reading.geometry import validate_geometry
from assist_models.interface import SeriesVolume, sha256_of
from assist_models.lung_nodule import candidates as cand
from assist_models.lung_nodule import evaluate as ev
from assist_models.lung_nodule import train
from assist_models.lung_nodule.predictor import LungNodulePredictor, load_card, measure
from assist_models.lung_nodule.synthetic import PlantedNodule, synthetic_series
from assist_models.lung_nodule.training import EVAL_SEED_BASE, TRAIN_SEED_BASE
from qc.evaluation.detection import evaluate_detection

# A held-out series (evaluation seeds never train) at the generator's default
# acquisition (0.7 mm pixels, 1.25 mm slices), cut to 120 slices to stay quick.
HELD_OUT_SEED = EVAL_SEED_BASE + 40


@pytest.fixture(scope="module")
def predictor():
    return LungNodulePredictor(device="cpu")


@pytest.fixture(scope="module")
def held_out():
    return synthetic_series(HELD_OUT_SEED, "fine", nodules=5, slices=120)


@pytest.fixture(scope="module")
def held_out_prediction(predictor, held_out):
    return predictor.predict(held_out[0])


def test_evaluation_seeds_are_not_training_seeds():
    card = load_card()
    assert str(TRAIN_SEED_BASE) in card.training_data
    assert HELD_OUT_SEED > TRAIN_SEED_BASE + 16 * 1000


def test_built_in_model_finds_the_nodules_of_a_held_out_series(held_out, held_out_prediction):
    series, truth = held_out
    assert len(truth) >= 4
    proposals = held_out_prediction.proposals
    for nodule in truth:
        hits = [
            p
            for p in proposals
            if np.linalg.norm(np.subtract(p.geometry["centre_mm"], nodule.centre_mm))
            <= nodule.diameter_mm / 2.0
        ]
        assert hits, f"missed {nodule}"
        assert hits[0].attributes["long_axis_mm"] == pytest.approx(nodule.diameter_mm, rel=0.35)
    false = [
        p
        for p in proposals
        if all(
            np.linalg.norm(np.subtract(p.geometry["centre_mm"], n.centre_mm)) > n.diameter_mm / 2
            for n in truth
        )
    ]
    assert len(false) <= 4, [(p.confidence, p.geometry["centre_mm"]) for p in false]


def test_proposals_are_valid_readers_findings(held_out, held_out_prediction, predictor):
    series, _ = held_out
    prediction = held_out_prediction
    assert prediction.model == "lung-nodule"
    assert prediction.weights_sha256 == predictor.card.weights_sha256
    assert prediction.threshold == predictor.card.default_threshold
    assert prediction.proposals
    for p in prediction.proposals:
        assert validate_geometry(p.geometry) == "ellipse"
        assert p.finding_type == "nodule"
        assert p.confidence >= prediction.threshold
        assert p.attributes["nodule_type"] in {"solid", "part_solid", "ground_glass"}
        shape = p.geometry["shapes"][0]
        assert 0 <= shape["slice_index"] < series.shape[0]
        (c0, r0), (c1, r1) = shape["points"]
        # the ellipse's box is centred on the proposal's centre, in this series' pixels
        col, row = (c0 + c1) / 2, (r0 + r1) / 2
        x, y, z = series.index_to_mm(shape["slice_index"], row, col)
        cx, cy, cz = p.geometry["centre_mm"]
        assert abs(x - cx) < 0.01 and abs(y - cy) < 0.01
        assert abs(z - cz) <= series.spacing[0] / 2 + 0.01


def test_measure_sizes_and_types_a_sphere():
    s = cand.SPACING_MM
    zz, yy, xx = np.indices((40, 40, 40))
    dist = np.sqrt((zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2) * s
    for core_r, expected in ((6.0, "solid"), (2.5, "part_solid"), (0.0, "ground_glass")):
        hu = np.full((40, 40, 40), -850.0, np.float32)
        hu[dist <= 6.0] = -600.0
        hu[dist <= core_r] = 40.0
        found = measure(hu, (20, 20, 20), radius_mm=6.0)
        assert found["nodule_type"] == expected
        assert found["long_axis_mm"] == pytest.approx(12.0, rel=0.1)


def test_no_lungs_no_candidates():
    soft = np.full((20, 40, 40), 40.0, np.float32)
    assert cand.find_candidates(soft) == []
    series = SeriesVolume(soft, (1.4, 1.4, 1.4))
    assert LungNodulePredictor(device="cpu").predict(series).proposals == ()


def test_model_refuses_another_modality(predictor):
    series = SeriesVolume(np.zeros((4, 8, 8), np.float32), (1.0, 1.0, 1.0), modality="MR")
    with pytest.raises(ValueError, match="reads CT, not MR"):
        predictor.predict(series)


def test_held_out_series_are_scored_by_the_evaluation_kit_the_luna16_way():
    from assist_models.interface import Proposal

    def series(uid):
        return SeriesVolume(np.zeros((40, 64, 64), np.float32), (2.0, 2.0, 2.0), series_uid=uid)

    def at(x, y, z, score):
        return Proposal("nodule", {"kind": "point", "shapes": [], "centre_mm": [x, y, z]}, score)

    a, b = series("1.2.1"), series("1.2.2")
    nodules = [
        PlantedNodule((10.0, 10.0, 10.0), 10.0, "solid"),
        PlantedNodule((50.0, 10.0, 10.0), 6.0, "ground-glass"),
    ]
    truth = ev.truth_of([(a, nodules, "fine"), (b, [], "coarse")])
    detections = ev.detections_of(
        "1.2.1",
        [
            at(11.0, 10.0, 10.0, 0.9),  # hit on the first nodule
            at(12.0, 11.0, 10.0, 0.8),  # second hit on it: neither hit nor FP
            at(100.0, 10.0, 10.0, 0.7),  # FP
            at(50.0, 12.0, 10.0, 0.6),  # hit on the second (2 mm < its 3 mm radius)
        ],
    ) + ev.detections_of("1.2.2", [at(10.0, 10.0, 10.0, 0.95)])  # FP on a scan without
    result = evaluate_detection(truth, detections, bootstrap=0, all_rules=False)
    figures = {k: v["value"] for k, v in result["figures"].items()}
    assert result["counts"]["scans"] == 2 and result["counts"]["lesions"] == 2
    assert figures["sens_at_0.125"] == 0.0  # the first mark (0.95) is already 0.5 FP/scan
    assert figures["sens_at_1"] == 1.0
    assert result["strata"]["finding_type"]["ground-glass"]["lesions"] == 1
    card_figures = ev.performance(
        {**result, "attributes": {"nodule_type_agreement": None, "size_error_mm_median": None}}
    )
    assert card_figures["sensitivity_at_1_fp_per_scan"] == 1.0
    assert card_figures["held_out_nodules"] == 2.0


def test_bounded_training_is_reproducible_and_its_weights_load(tmp_path):
    small = {"series": 2, "nodules": 3, "steps": 20, "slices": {"fine": 40, "coarse": 24}}
    first = train(tmp_path / "a", seed=1, **small)
    second = train(tmp_path / "b", seed=1, **small)
    assert first["sha256"] == second["sha256"]
    assert first["positives"] > 0 and first["negatives"] > 0
    weights = tmp_path / "a" / "lung_nodule.pt"
    assert sha256_of(weights) == first["sha256"]
    card = load_card(tmp_path / "a" / "lung_nodule.card.json")
    assert card.weights_sha256 == first["sha256"]
    assert card.missing() == ["performance", "performance_command"]  # not evaluated yet
    model = LungNodulePredictor(weights, device="cpu")
    series, _ = synthetic_series(EVAL_SEED_BASE + 41, "coarse", nodules=2, slices=24)
    prediction = model.predict(series, threshold=0.0)
    assert prediction.weights_sha256 == first["sha256"]
    assert len(prediction.proposals) > 0


def test_weights_that_do_not_match_their_card_are_refused(tmp_path):
    import shutil

    from assist_models.lung_nodule.predictor import CARD, WEIGHTS

    shutil.copy(CARD, tmp_path / "lung_nodule.card.json")
    (tmp_path / "lung_nodule.pt").write_bytes(WEIGHTS.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="differs from the card"):
        LungNodulePredictor(tmp_path / "lung_nodule.pt", device="cpu")
