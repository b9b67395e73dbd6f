"""Users' own models: a folder with a TorchScript file and a small config.

    my-model/
        model.pt      torch.jit.save(torch.jit.script(net), "model.pt")
        config.json   {"name": "my-nodules", "version": "1.0", "task": "detection",
                       "modality": "CT", "input_spacing_mm": [1.5, 1.5, 1.5],
                       "window": {"centre": -600, "width": 1500},
                       "classes": ["nodule"], "thresholds": {"nodule": 0.5}}

The volume is resampled to `input_spacing_mm` (slice, row, column; null keeps
the native spacing), windowed to [0, 1] (`window` null: raw values) and given
to the model as a float32 tensor (1, 1, slices, rows, columns).

- task "detection": the model returns per-voxel scores (1, C, d, h, w) for the
  C `classes` (any d, h, w: resized back to the series' grid). `activation`
  ("sigmoid" default, "softmax" or "none") turns them into probabilities. Each
  connected region above its class's threshold becomes one proposal: its
  geometry a `geometry_kind` ("box" default or "ellipse") per slice it covers,
  its confidence the region's highest probability, `centre_mm` the
  probability-weighted centroid.
- task "classification": the model returns (1, C); the prediction carries the
  case-level probability of each class (`input_shape` [d, h, w] optionally
  resizes the resampled volume to a fixed shape first).

Optional card fields (training_data, performance, performance_command,
intended_use, limitations, licence) are carried into the model card; the
weights' sha256 is computed from model.pt. Unknown fields are refused, so a
misspelt one is not silently ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .device import select_device
from .interface import TASKS, ModelCard, Prediction, Proposal, SeriesVolume, sha256_of
from .preprocess import apply_window, resample, resize

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
ACTIVATIONS = ("sigmoid", "softmax", "none")
GEOMETRY_KINDS = ("box", "ellipse")
CARD_TEXT_FIELDS = (
    "training_data",
    "performance_command",
    "intended_use",
    "limitations",
    "licence",
)
REQUIRED = (
    "name",
    "version",
    "task",
    "modality",
    "input_spacing_mm",
    "window",
    "classes",
    "thresholds",
)
OPTIONAL = (
    "activation",
    "geometry_kind",
    "input_shape",
    "max_proposals",
    "performance",
    *CARD_TEXT_FIELDS,
)


class ConfigError(ValueError):
    """A plug-in folder or config.json that cannot be used; `problems` names each field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class PluginConfig:
    name: str
    version: str
    task: str
    modality: str
    input_spacing_mm: tuple[float, float, float] | None
    window: tuple[float, float] | None  # (centre, width)
    classes: tuple[str, ...]
    thresholds: dict[str, float]
    activation: str = "sigmoid"
    geometry_kind: str = "box"
    input_shape: tuple[int, int, int] | None = None
    max_proposals: int = 100
    performance: dict[str, float] = field(default_factory=dict)
    card_text: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> PluginConfig:
        """Validate config.json's content; ConfigError lists every problem by field."""
        if not isinstance(data, dict):
            raise ConfigError(["config.json must hold a JSON object"])
        p: list[str] = [f"{k}: unknown field" for k in sorted(set(data) - {*REQUIRED, *OPTIONAL})]
        p += [f"{k}: required" for k in REQUIRED if k not in data]
        if p:
            raise ConfigError(p)
        for key in ("name", "version", "modality"):
            if not isinstance(data[key], str) or not data[key].strip():
                p.append(f"{key}: must be a non-empty string")
        if data["task"] not in TASKS:
            p.append(f"task: must be one of {', '.join(TASKS)}, not {data['task']!r}")
        spacing = data["input_spacing_mm"]
        if spacing is not None and not (
            isinstance(spacing, list)
            and len(spacing) == 3
            and all(_number(v) and v > 0 for v in spacing)
        ):
            p.append("input_spacing_mm: must be [slice, row, column] positive mm, or null")
        window = data["window"]
        if window is not None and not (
            isinstance(window, dict)
            and set(window) == {"centre", "width"}
            and _number(window["centre"])
            and _number(window["width"])
            and window["width"] > 0
        ):
            p.append('window: must be {"centre": number, "width": number > 0}, or null')
        classes = data["classes"]
        if not (
            isinstance(classes, list)
            and classes
            and all(isinstance(c, str) and c for c in classes)
            and len(set(classes)) == len(classes)
        ):
            p.append("classes: must be a non-empty list of distinct names")
            classes = []
        thresholds = data["thresholds"]
        if not isinstance(thresholds, dict):
            p.append("thresholds: must be an object of class -> probability")
        else:
            for c in classes:
                if c not in thresholds:
                    p.append(f"thresholds: no threshold for class {c!r}")
            for c, t in thresholds.items():
                if c not in classes:
                    p.append(f"thresholds: {c!r} is not one of the classes")
                elif not (_number(t) and 0.0 <= t <= 1.0):
                    p.append(f"thresholds.{c}: must be a number in [0, 1]")
        activation = data.get("activation", "sigmoid")
        if activation not in ACTIVATIONS:
            p.append(f"activation: must be one of {', '.join(ACTIVATIONS)}")
        kind = data.get("geometry_kind", "box")
        if kind not in GEOMETRY_KINDS:
            p.append(f"geometry_kind: must be one of {', '.join(GEOMETRY_KINDS)}")
        shape = data.get("input_shape")
        if shape is not None and not (
            isinstance(shape, list)
            and len(shape) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
        ):
            p.append("input_shape: must be [slices, rows, columns] positive integers, or null")
        max_proposals = data.get("max_proposals", 100)
        if not (isinstance(max_proposals, int) and not isinstance(max_proposals, bool)) or not (
            1 <= max_proposals <= 10_000
        ):
            p.append("max_proposals: must be an integer from 1 to 10000")
        performance = data.get("performance", {})
        if not isinstance(performance, dict) or not all(_number(v) for v in performance.values()):
            p.append("performance: must be an object of name -> number")
        for key in CARD_TEXT_FIELDS:
            if key in data and not isinstance(data[key], str):
                p.append(f"{key}: must be a string")
        if p:
            raise ConfigError(p)
        return cls(
            name=data["name"].strip(),
            version=data["version"].strip(),
            task=data["task"],
            modality=data["modality"].strip().upper(),
            input_spacing_mm=None if spacing is None else tuple(float(v) for v in spacing),
            window=None if window is None else (float(window["centre"]), float(window["width"])),
            classes=tuple(classes),
            thresholds={c: float(thresholds[c]) for c in classes},
            activation=activation,
            geometry_kind=kind,
            input_shape=None if shape is None else tuple(shape),
            max_proposals=max_proposals,
            performance={k: float(v) for k, v in performance.items()},
            card_text={k: data[k] for k in CARD_TEXT_FIELDS if k in data},
        )

    def card(self, weights_sha256: str) -> ModelCard:
        text = self.card_text
        return ModelCard(
            name=self.name,
            version=self.version,
            task=self.task,
            modality=self.modality,
            input_spacing_mm=self.input_spacing_mm,
            window=self.window,
            classes=self.classes,
            training_data=text.get("training_data", ""),
            performance=dict(self.performance),
            performance_command=text.get("performance_command", ""),
            intended_use=text.get("intended_use", ""),
            limitations=text.get("limitations", ""),
            licence=text.get("licence", ""),
            weights_sha256=weights_sha256,
            thresholds=dict(self.thresholds),
            default_threshold=None,
        )


def read_plugin(folder: str | Path) -> tuple[PluginConfig, ModelCard]:
    """Check a plug-in folder without loading torch: (config, card)."""
    folder = Path(folder)
    problems = []
    if not folder.is_dir():
        raise ConfigError([f"{folder}: not a folder"])
    if not (folder / MODEL_FILE).is_file():
        problems.append(f"{MODEL_FILE}: missing in {folder}")
    if not (folder / CONFIG_FILE).is_file():
        problems.append(f"{CONFIG_FILE}: missing in {folder}")
    if problems:
        raise ConfigError(problems)
    try:
        data = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError([f"{CONFIG_FILE}: not valid JSON ({exc})"])
    config = PluginConfig.from_dict(data)
    return config, config.card(sha256_of(folder / MODEL_FILE))


class TorchScriptPredictor:
    """A plug-in folder behind the predictor interface."""

    def __init__(self, folder: str | Path, device: str | None = None):
        import torch

        self.folder = Path(folder)
        self.config, self.card = read_plugin(self.folder)
        self.device = select_device(device)
        try:
            self.module = torch.jit.load(str(self.folder / MODEL_FILE), map_location=self.device)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError([f"{MODEL_FILE}: not a TorchScript file torch can load ({exc})"])
        self.module.eval()

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            out = self.module(torch.from_numpy(x)[None, None].to(self.device))
            if not isinstance(out, torch.Tensor):
                raise ConfigError([f"{MODEL_FILE}: the model must return one tensor"])
            out = out.float()
            if self.config.activation == "sigmoid":
                out = torch.sigmoid(out)
            elif self.config.activation == "softmax":
                out = torch.softmax(out, dim=1)
        return out.cpu().numpy()

    def predict(self, series: SeriesVolume, *, threshold: float | None = None) -> Prediction:
        cfg = self.config
        if series.modality.upper() != cfg.modality:
            raise ValueError(f"{cfg.name} reads {cfg.modality}, not {series.modality}")
        x = resample(series.pixels, series.spacing, cfg.input_spacing_mm)
        if cfg.task == "classification" and cfg.input_shape is not None:
            x = resize(x, cfg.input_shape)
        x = apply_window(x, cfg.window)
        out = self._run(np.ascontiguousarray(x))
        n = len(cfg.classes)
        common = {
            "model": cfg.name,
            "version": cfg.version,
            "weights_sha256": self.card.weights_sha256,
            "threshold": threshold,
        }
        if cfg.task == "classification":
            if out.shape != (1, n):
                raise ConfigError([f"{MODEL_FILE}: returned {out.shape}, expected (1, {n})"])
            probs = {c: round(float(out[0, i]), 6) for i, c in enumerate(cfg.classes)}
            return Prediction(case_probabilities=probs, **common)
        if out.ndim != 5 or out.shape[:2] != (1, n):
            raise ConfigError(
                [f"{MODEL_FILE}: returned {out.shape}, expected (1, {n}, slices, rows, columns)"]
            )
        return Prediction(proposals=tuple(self._regions(series, out[0], threshold)), **common)

    def _regions(self, series: SeriesVolume, scores: np.ndarray, threshold: float | None):
        from scipy import ndimage as ndi

        cfg = self.config
        shape = series.shape
        if scores.shape[1:] != shape:
            scores = np.stack([resize(c, shape) for c in scores])
        found: list[Proposal] = []
        for ci, cls in enumerate(cfg.classes):
            t = cfg.thresholds[cls] if threshold is None else threshold
            prob = scores[ci]
            labels, count = ndi.label(prob >= t)
            if not count:
                continue
            index = np.arange(1, count + 1)
            peaks = ndi.maximum(prob, labels, index)
            centres = ndi.center_of_mass(prob, labels, index)
            boxes = ndi.find_objects(labels)
            for k, (peak, centre, box) in enumerate(zip(peaks, centres, boxes, strict=True)):
                region = labels[box] == k + 1
                shapes = []
                for dz in range(region.shape[0]):
                    rows, cols = np.nonzero(region[dz])
                    if rows.size == 0:
                        continue
                    r0, r1 = box[1].start + rows.min(), box[1].start + rows.max()
                    c0, c1 = box[2].start + cols.min(), box[2].start + cols.max()
                    shapes.append(
                        {
                            "slice_index": int(box[0].start + dz),
                            "points": [[float(c0), float(r0)], [float(c1), float(r1)]],
                        }
                    )
                geometry = {
                    "kind": cfg.geometry_kind,
                    "shapes": shapes,
                    "centre_mm": list(series.index_to_mm(*centre)),
                }
                found.append(Proposal(cls, geometry, round(float(peak), 6)))
        found.sort(key=lambda p: -p.confidence)
        return found[: cfg.max_proposals]
