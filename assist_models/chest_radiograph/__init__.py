"""The built-in chest radiograph model (DX / CR): image quality and localised
findings from one compact 2D CNN.

synthetic.py draws training and evaluation radiographs from the fixtures'
generator (fixtures/xr.py), network.py is the CNN, predictor.py puts it behind
the predictor interface (case probabilities of the quality classes and the
findings, box proposals for the findings), training.py trains it, evaluate.py
measures ROC AUC per class on held-out radiographs. Importing this package
does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..interface import ModelCard

NAME = "chest-radiograph"


def load_card() -> ModelCard:
    from .predictor import load_card as _load

    return _load()


def load_predictor(device: str | None = None):
    """The committed model (assist_models/weights/chest_radiograph.pt)."""
    from .predictor import ChestRadiographPredictor

    return ChestRadiographPredictor(device=device)


def train(out_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """See training.train: writes chest_radiograph.pt and chest_radiograph.card.json
    into out_dir."""
    from .training import train as _train

    return _train(out_dir, **kwargs)
