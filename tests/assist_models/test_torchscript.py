"""Users' TorchScript plug-ins: written here, registered, loaded and run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from assist_models.interface import SeriesVolume, sha256_of
from assist_models.registry import BUILTIN_MODELS, ModelRegistry, RegistryError
from assist_models.torchscript import ConfigError, PluginConfig, TorchScriptPredictor

# torch 2.13 marks TorchScript deprecated (in favour of torch.export); the issue
# asks for TorchScript plug-ins, which torch still loads and runs.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")

DETECTION = {
    "name": "bright-blocks",
    "version": "0.1",
    "task": "detection",
    "modality": "CT",
    "input_spacing_mm": [2.0, 2.0, 2.0],
    "window": {"centre": 0.0, "width": 1000.0},
    "classes": ["block"],
    "thresholds": {"block": 0.5},
    "licence": "MIT",
}


class Bright(nn.Module):
    """Logit +10 where the windowed input is above 0.75 (i.e. > 250 HU), else -10."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0.75, torch.full_like(x, 10.0), torch.full_like(x, -10.0))


class MeanToClasses(nn.Module):
    """Two-class logits from the mean intensity: [mean * 4, -mean * 4]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean().reshape(1, 1) * 4.0
        return torch.cat([m, -m], dim=1)


def write_plugin(folder: Path, module: nn.Module, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.jit.save(torch.jit.script(module), str(folder / "model.pt"))
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def two_blocks() -> SeriesVolume:
    pixels = np.full((20, 40, 40), -1000.0, dtype=np.float32)
    pixels[4:8, 6:14, 10:18] = 500.0  # slices 4-7, rows 6-13, columns 10-17
    pixels[12:18, 24:32, 26:36] = 500.0
    return SeriesVolume(pixels, (2.0, 1.0, 1.0), (-20.0, -20.0, 100.0), modality="CT")


def test_detection_plugin_is_registered_loaded_and_run(tmp_path):
    folder = write_plugin(tmp_path / "blocks", Bright(), DETECTION)
    registry = ModelRegistry()
    card = registry.register_torchscript(folder)
    assert card.name == "bright-blocks" and card.weights_sha256 == sha256_of(folder / "model.pt")
    assert "bright-blocks" in registry.names()
    predictor = registry.load("bright-blocks", device="cpu")
    prediction = predictor.predict(two_blocks())
    assert prediction.model == "bright-blocks" and prediction.version == "0.1"
    assert prediction.weights_sha256 == card.weights_sha256
    assert len(prediction.proposals) == 2
    by_slice = sorted(prediction.proposals, key=lambda p: p.geometry["shapes"][0]["slice_index"])
    first = by_slice[0].geometry
    assert first["kind"] == "box"
    # the 2 mm model grid is resized back to the series grid: same slices and extent
    assert [s["slice_index"] for s in first["shapes"]] == [4, 5, 6, 7]
    (c0, r0), (c1, r1) = first["shapes"][0]["points"]
    assert abs(c0 - 10) <= 1 and abs(c1 - 17) <= 1 and abs(r0 - 6) <= 1 and abs(r1 - 13) <= 1
    # centre of slices 4..7, rows 6..13, columns 10..17 in patient space
    assert first["centre_mm"] == pytest.approx([-20 + 13.5, -20 + 9.5, 100 + 2 * 5.5], abs=0.6)
    assert all(p.finding_type == "block" and p.confidence > 0.99 for p in prediction.proposals)


def test_threshold_in_force_is_recorded_and_applied(tmp_path):
    folder = write_plugin(tmp_path / "blocks", Bright(), DETECTION)
    predictor = TorchScriptPredictor(folder, device="cpu")
    prediction = predictor.predict(two_blocks(), threshold=0.99999)
    assert prediction.threshold == 0.99999
    assert prediction.proposals == ()


def test_classification_plugin_gives_case_probabilities(tmp_path):
    config = {
        **DETECTION,
        "name": "brightness",
        "task": "classification",
        "classes": ["bright", "dark"],
        "thresholds": {"bright": 0.5, "dark": 0.5},
        "activation": "softmax",
        "input_shape": [8, 8, 8],
        "window": {"centre": 0.0, "width": 2000.0},
    }
    folder = write_plugin(tmp_path / "cls", MeanToClasses(), config)
    predictor = TorchScriptPredictor(folder, device="cpu")
    volume = SeriesVolume(np.full((10, 16, 16), 1000.0, np.float32), (1.0, 1.0, 1.0))
    probs = predictor.predict(volume).case_probabilities
    # windowed mean 1.0 -> logits [4, -4] -> softmax
    assert probs["bright"] == pytest.approx(1 / (1 + np.exp(-8)), abs=1e-5)
    assert probs["bright"] + probs["dark"] == pytest.approx(1.0)


def test_plugin_refuses_another_modality(tmp_path):
    folder = write_plugin(tmp_path / "blocks", Bright(), DETECTION)
    series = SeriesVolume(np.zeros((2, 4, 4), np.float32), (1.0, 1.0, 1.0), modality="MR")
    with pytest.raises(ValueError, match="reads CT, not MR"):
        TorchScriptPredictor(folder, device="cpu").predict(series)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"task": "segmentation"}, "task: must be one of detection, classification"),
        ({"input_spacing_mm": [1, 0, 1]}, "input_spacing_mm:"),
        ({"window": {"centre": 0, "width": -5}}, "window:"),
        ({"window": [0, 100]}, "window:"),
        ({"classes": []}, "classes:"),
        ({"thresholds": {"block": 1.5}}, "thresholds.block: must be a number in [0, 1]"),
        ({"thresholds": {}}, "thresholds: no threshold for class 'block'"),
        ({"thresholds": {"block": 0.5, "cyst": 0.5}}, "thresholds: 'cyst' is not one"),
        ({"activation": "relu"}, "activation:"),
        ({"geometry_kind": "mask"}, "geometry_kind:"),
        ({"input_shape": [1, 2]}, "input_shape:"),
        ({"max_proposals": 0}, "max_proposals:"),
        ({"performance": {"auc": "high"}}, "performance:"),
        ({"licence": 3}, "licence: must be a string"),
        ({"name": " "}, "name: must be a non-empty string"),
        ({"treshold": 0.5}, "treshold: unknown field"),
    ],
)
def test_config_errors_name_the_field(change, named):
    with pytest.raises(ConfigError) as err:
        PluginConfig.from_dict({**DETECTION, **change})
    assert any(named in p for p in err.value.problems), err.value.problems


def test_config_lists_every_missing_field_at_once():
    with pytest.raises(ConfigError) as err:
        PluginConfig.from_dict({"name": "x"})
    assert sorted(err.value.problems) == sorted(
        f"{k}: required"
        for k in (
            "version",
            "task",
            "modality",
            "input_spacing_mm",
            "window",
            "classes",
            "thresholds",
        )
    )


def test_folder_problems_are_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as err:
        ModelRegistry().register_torchscript(tmp_path / "empty")
    assert err.value.problems == [
        f"model.pt: missing in {tmp_path / 'empty'}",
        f"config.json: missing in {tmp_path / 'empty'}",
    ]
    bad = write_plugin(tmp_path / "bad", Bright(), DETECTION)
    (bad / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="config.json: not valid JSON"):
        ModelRegistry().register_torchscript(bad)
    junk = write_plugin(tmp_path / "junk", Bright(), DETECTION)
    (junk / "model.pt").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="model.pt: not a TorchScript file"):
        TorchScriptPredictor(junk, device="cpu")


def test_wrong_output_shape_is_reported(tmp_path):
    config = {**DETECTION, "classes": ["a", "b"], "thresholds": {"a": 0.5, "b": 0.5}}
    folder = write_plugin(tmp_path / "one-channel", Bright(), config)
    with pytest.raises(ConfigError, match=r"expected \(1, 2, slices, rows, columns\)"):
        TorchScriptPredictor(folder, device="cpu").predict(two_blocks())


def test_names_are_unique_and_registries_independent(tmp_path):
    folder = write_plugin(tmp_path / "blocks", Bright(), DETECTION)
    first = ModelRegistry()
    first.register_torchscript(folder)
    with pytest.raises(RegistryError, match="already registered"):
        first.register_torchscript(folder)
    clash = write_plugin(tmp_path / "clash", Bright(), {**DETECTION, "name": "lung-nodule"})
    with pytest.raises(RegistryError, match="'lung-nodule' is already registered"):
        first.register_torchscript(clash)
    assert "bright-blocks" not in ModelRegistry().names()
    second = ModelRegistry(plugins={"bright-blocks": folder})
    assert second.card("bright-blocks").task == "detection"
    second.unregister("bright-blocks")
    assert second.names() == sorted(BUILTIN_MODELS)
