"""The built-in chest radiograph model: right probabilities and boxes on held-out
synthetic radiographs, valid readers' findings, the polarity and positioning it is
given, reproducible bounded training, and the figures its card claims."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from annotation_server.projects.schema import validate_finding
from annotation_server.reading.geometry import validate_geometry
from assist_models.chest_radiograph import evaluate as ev
from assist_models.chest_radiograph import train
from assist_models.chest_radiograph.predictor import (
    CARD,
    CLASSES,
    WEIGHTS,
    ChestRadiographPredictor,
    _iou,
    load_card,
    prepare,
)
from assist_models.chest_radiograph.synthetic import FINDINGS, synthetic_radiograph
from assist_models.chest_radiograph.training import EVAL_SEED_BASE, TRAIN_SEED_BASE
from assist_models.interface import Predictor, SeriesVolume, sha256_of
from assist_models.registry import ModelRegistry

SCHEMA = Path(__file__).resolve().parents[2] / (
    "annotation_server/projects/label_schemas/chest_radiograph.json"
)
# Held-out seeds past the ones the card's evaluation used (evaluation seeds never train).
HELD_OUT_SEED = EVAL_SEED_BASE + 5000
WELL_TAKEN = {"exposure": None, "positioning": None, "angle_deg": 0.5, "shift": (0.01, -0.01)}


@pytest.fixture(scope="module")
def predictor():
    return ChestRadiographPredictor(device="cpu")


@pytest.fixture(scope="module")
def with_all_findings():
    return synthetic_radiograph(HELD_OUT_SEED, size=384, findings=FINDINGS, **WELL_TAKEN)


def test_evaluation_seeds_are_not_training_seeds():
    card = load_card()
    first, last = (int(v) for v in re.search(r"seeds (\d+)\.\.(\d+)", card.training_data).groups())
    assert first == TRAIN_SEED_BASE and last < EVAL_SEED_BASE
    assert "synthetic" in card.training_data.lower() and "synthetic" in card.limitations.lower()


def test_registry_loads_the_model_by_name():
    registry = ModelRegistry()
    assert "chest-radiograph" in registry.names()
    model = registry.load("chest-radiograph", device="cpu")
    assert isinstance(model, Predictor)
    assert registry.card("chest-radiograph").classes == CLASSES
    assert model.card.weights_sha256 == sha256_of(WEIGHTS)


def test_finds_and_boxes_the_findings_of_a_held_out_radiograph(predictor, with_all_findings):
    case = with_all_findings
    prediction = predictor.predict(case.series)
    probs = prediction.case_probabilities
    assert set(probs) == set(CLASSES)
    for finding in case.findings:
        assert probs[finding.type] >= 0.5, (finding.type, probs)
        boxes = [p for p in prediction.proposals if p.finding_type == finding.type]
        assert boxes, f"no {finding.type} proposal"
        (x0, y0), (x1, y1) = boxes[0].geometry["shapes"][0]["points"]
        assert _iou((x0, y0, x1, y1), finding.box) >= 0.3, (finding, boxes[0].geometry)
    for quality in ("under_exposed", "over_exposed", "mispositioned"):
        assert probs[quality] < 0.5, (quality, probs)


def test_proposals_are_valid_readers_findings_of_the_chest_schema(predictor, with_all_findings):
    series = with_all_findings.series
    prediction = predictor.predict(series)
    definition = json.loads(SCHEMA.read_text(encoding="utf-8"))["definition"]
    assert prediction.model == "chest-radiograph"
    assert prediction.weights_sha256 == predictor.card.weights_sha256
    assert prediction.threshold == predictor.card.default_threshold
    assert prediction.proposals
    for p in prediction.proposals:
        assert validate_geometry(p.geometry) == "box"
        validate_finding(definition, p.finding_type, "box", dict(p.attributes), complete=True)
        assert p.confidence >= prediction.threshold
        assert p.confidence <= prediction.case_probabilities[p.finding_type]
        shape = p.geometry["shapes"][0]
        assert shape["slice_index"] == 0
        (c0, r0), (c1, r1) = shape["points"]
        assert 0 <= c0 < c1 < series.shape[2] and 0 <= r0 < r1 < series.shape[1]
        x, y, _ = series.index_to_mm(0, (r0 + r1) / 2, (c0 + c1) / 2)
        assert p.geometry["centre_mm"][:2] == pytest.approx([x, y], abs=0.01)


@pytest.mark.parametrize(
    ("plan", "expected"),
    [
        ({"exposure": "under-exposed"}, "under_exposed"),
        ({"exposure": "over-exposed"}, "over_exposed"),
        ({"positioning": "tilted", "angle_deg": -11.0}, "mispositioned"),
        ({"positioning": "off-centre", "shift": (0.24, 0.0)}, "mispositioned"),
    ],
)
def test_quality_problems_are_recognised(predictor, plan, expected):
    case = synthetic_radiograph(HELD_OUT_SEED + 1, size=320, findings=(), **{**WELL_TAKEN, **plan})
    probs = predictor.predict(case.series).case_probabilities
    assert probs[expected] >= 0.5, probs
    for other in ("under_exposed", "over_exposed", "mispositioned"):
        if other != expected:
            assert probs[other] < 0.5, probs


def test_monochrome1_reads_as_its_monochrome2_twin():
    plain = synthetic_radiograph(HELD_OUT_SEED + 2, size=256, photometric="MONOCHROME2")
    inverted = synthetic_radiograph(HELD_OUT_SEED + 2, size=256, photometric="MONOCHROME1")
    assert not np.array_equal(plain.series.pixels, inverted.series.pixels)
    a, b = prepare(plain.series), prepare(inverted.series)
    assert (a.inverted, b.inverted) == (False, True)
    assert np.array_equal(a.image, b.image)


def test_positioning_moves_the_truth_with_the_patient():
    still = synthetic_radiograph(
        HELD_OUT_SEED + 3, size=256, findings=("nodule",), angle_deg=0.0, shift=(0.0, 0.0)
    )
    moved = synthetic_radiograph(
        HELD_OUT_SEED + 3, size=256, findings=("nodule",), angle_deg=0.0, shift=(0.0, 0.1)
    )
    (a,), (b,) = still.findings, moved.findings
    assert b.box[0] - a.box[0] == pytest.approx(25.6, abs=0.01)
    assert b.box[1] == pytest.approx(a.box[1], abs=0.01)
    # shifted far enough, a finding leaves the field and the truth
    gone = synthetic_radiograph(
        HELD_OUT_SEED + 3, size=256, findings=("nodule",), angle_deg=0.0, shift=(0.0, 0.9)
    )
    assert gone.findings == () and gone.labels()["nodule"] == 0


def test_boxes_map_to_the_working_grid_and_back_on_a_non_square_image():
    series = SeriesVolume(np.zeros((1, 300, 200), np.float32), (1.0, 0.5, 0.5), modality="CR")
    prep = prepare(series)
    assert prep.pad == (0, 50) and prep.scale == pytest.approx(300 / 256)
    box = (20.0, 40.0, 79.0, 119.0)
    assert prep.to_source(*prep.to_working(box)) == pytest.approx(box)


def test_model_refuses_other_modalities_and_stacks(predictor):
    ct = SeriesVolume(np.zeros((1, 8, 8), np.float32), (1.0, 1.0, 1.0), modality="CT")
    with pytest.raises(ValueError, match="not CT"):
        predictor.predict(ct)
    stack = SeriesVolume(np.zeros((2, 8, 8), np.float32), (1.0, 1.0, 1.0), modality="DX")
    with pytest.raises(ValueError, match="one radiograph"):
        predictor.predict(stack)


def test_committed_weights_reach_the_card_figures_on_held_out_radiographs():
    card = load_card()
    assert card.performance_command.startswith(".venv/bin/python -m assist_models.chest_radiograph")
    result = ev.evaluate(images=32, first_seed=HELD_OUT_SEED + 100, bootstrap=0)
    for name in CLASSES:
        measured = result["classes"][name]["auc"]
        assert measured is not None, name
        assert measured >= card.performance[f"auc_{name}"] - 0.08, (name, measured)


def test_bounded_training_is_reproducible_and_its_weights_load(tmp_path):
    first = train(tmp_path / "a", seed=1, images=6, steps=3)
    # as `manage.py train_assist_model chest-radiograph` calls it
    second = train(tmp_path / "b", seed=1, series=6, steps=3, nodules=6, slices=None)
    assert first["sha256"] == second["sha256"]
    assert first["bytes"] < 2_000_000
    weights = tmp_path / "a" / "chest_radiograph.pt"
    assert sha256_of(weights) == first["sha256"]
    card = load_card(tmp_path / "a" / "chest_radiograph.card.json")
    assert card.weights_sha256 == first["sha256"]
    assert card.missing() == ["performance", "performance_command"]  # not evaluated yet
    model = ChestRadiographPredictor(weights, device="cpu")
    case = synthetic_radiograph(HELD_OUT_SEED + 4, size=256)
    prediction = model.predict(case.series, threshold=0.0)
    assert prediction.weights_sha256 == first["sha256"]
    assert set(prediction.case_probabilities) == set(CLASSES)
    assert {p.finding_type for p in prediction.proposals} == set(FINDINGS)


def test_weights_that_do_not_match_their_card_are_refused(tmp_path):
    shutil.copy(CARD, tmp_path / "chest_radiograph.card.json")
    (tmp_path / "chest_radiograph.pt").write_bytes(WEIGHTS.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="differs from the card"):
        ChestRadiographPredictor(tmp_path / "chest_radiograph.pt", device="cpu")
