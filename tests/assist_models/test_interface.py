"""The predictor interface, model cards, device choice and the registry (no DB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assist_models.device import select_device
from assist_models.interface import CardError, ModelCard, Predictor, SeriesVolume, sha256_of
from assist_models.lung_nodule.predictor import CARD, WEIGHTS, load_card
from assist_models.registry import BUILTIN_MODELS, ModelRegistry, RegistryError

ROOT = Path(__file__).resolve().parents[2]


def test_series_volume_maps_voxels_to_the_generators_patient_space():
    from fixtures.ct import plan_ct

    plan = plan_ct(8, seed=3, matrix=64, pixel_spacing=5.0, spacing=5.0, nodules=1)
    geo = plan.truth["geometry"]
    series = SeriesVolume(
        pixels=np.zeros((8, 64, 64), dtype=np.float32),
        spacing=(5.0, 5.0, 5.0),
        origin=tuple(geo["origin_mm"]),
    )
    nodule = plan.truth["nodules"][0]
    col, row, index = nodule["centre_voxel"]
    assert series.index_to_mm(index, row, col) == pytest.approx(nodule["centre_mm"], abs=1e-3)


def test_series_volume_maps_through_a_tilted_orientation():
    # columns run along patient y, rows along patient -x: the normal is +z
    series = SeriesVolume(
        np.zeros((3, 4, 4)), (2.0, 0.5, 0.25), (10.0, 20.0, 30.0), (0, 1, 0, -1, 0, 0)
    )
    assert series.index_to_mm(1, 2, 4) == pytest.approx((10.0 - 1.0, 20.0 + 1.0, 32.0))


@pytest.mark.parametrize(
    ("pixels", "spacing", "message"),
    [
        (np.zeros((4, 4)), (1.0, 1.0, 1.0), "3-D"),
        (np.zeros((2, 4, 4)), (1.0, 0.0, 1.0), "spacing"),
        (np.zeros((2, 4, 4)), (1.0, 1.0), "spacing"),
    ],
)
def test_series_volume_refuses_bad_input(pixels, spacing, message):
    with pytest.raises(ValueError, match=message):
        SeriesVolume(pixels, spacing)


def test_committed_card_is_complete_and_names_its_weights():
    card = load_card()
    assert card.missing() == []
    assert card.weights_sha256 == sha256_of(WEIGHTS)
    assert WEIGHTS.stat().st_size < 5 * 1024 * 1024
    assert "synthetic" in card.training_data.lower()
    assert "synthetic" in card.limitations.lower()
    assert card.performance["sensitivity_at_2_fp_per_scan"] >= 0.9
    assert "assist_models.lung_nodule evaluate" in card.performance_command
    assert card.input_spacing_mm is not None and card.window is not None


def test_card_round_trips_and_names_every_bad_field():
    data = json.loads(CARD.read_text(encoding="utf-8"))
    assert ModelCard.from_dict(data).to_dict() == data
    broken = {k: v for k, v in data.items() if k != "licence"}
    broken["task"] = "segmentation-ish"
    broken["colour"] = "red"
    with pytest.raises(CardError) as err:
        ModelCard.from_dict(broken)
    assert "'licence'" in str(err.value) and "'colour'" in str(err.value)
    broken = {**data, "task": "segmentation-ish", "window": [1, 2, 3]}
    with pytest.raises(CardError) as err:
        ModelCard.from_dict(broken)
    assert "task must be one of" in str(err.value) and "window must be 2" in str(err.value)


def test_incomplete_card_lists_what_is_missing():
    card = ModelCard.from_dict(
        {**json.loads(CARD.read_text(encoding="utf-8")), "performance": {}, "licence": ""}
    )
    assert card.missing() == ["performance", "licence"]


def test_device_falls_back_to_the_cpu_without_cuda():
    assert select_device(cuda_available=lambda: False) == "cpu"
    assert select_device("cuda", cuda_available=lambda: False) == "cpu"
    assert select_device("cuda:1", cuda_available=lambda: True) == "cuda:1"
    assert select_device(cuda_available=lambda: True) == "cuda"
    assert select_device("CPU", cuda_available=lambda: True) == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu", cuda_available=lambda: True)


def test_device_follows_this_machine():
    import torch

    assert select_device() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_importing_the_package_and_registry_does_not_import_torch():
    code = (
        "import sys, assist_models, assist_models.registry, assist_models.lung_nodule;"
        "r = assist_models.registry.ModelRegistry(); c = r.card('lung-nodule');"
        "print('torch' in sys.modules, c.name)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["False", "lung-nodule"]


def test_registry_lists_built_ins_and_explains_unknown_names():
    registry = ModelRegistry()
    assert registry.names() == sorted(BUILTIN_MODELS)
    assert registry.card("lung-nodule").name == "lung-nodule"
    with pytest.raises(RegistryError, match="known: .*lung-nodule"):
        registry.card("lung-nodles")
    with pytest.raises(RegistryError, match="no assist model named"):
        registry.load("nope")
    with pytest.raises(RegistryError, match="built-in models stay"):
        registry.unregister("lung-nodule")


def test_registry_loads_the_built_in_model_on_the_chosen_device():
    predictor = ModelRegistry().load("lung-nodule", device="cpu")
    assert isinstance(predictor, Predictor)
    assert predictor.device == "cpu"
    assert predictor.card.name == "lung-nodule"


def test_an_accuracy_evaluation_keeps_the_cards_speed_figures(tmp_path):
    from assist_models.builtin import write_performance

    card = tmp_path / "m.card.json"
    card.write_text(
        json.dumps(
            {
                "performance": {"cpm": 0.5, "speed_s_cpu": 3.0},
                "performance_command": "old eval; speed: bench/x.py",
            }
        )
    )
    write_performance(card, {"cpm": 0.9}, "new eval")
    data = json.loads(card.read_text())
    assert data["performance"] == {"cpm": 0.9, "speed_s_cpu": 3.0}
    assert data["performance_command"] == "new eval; speed: bench/x.py"
