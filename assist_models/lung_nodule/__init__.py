"""The built-in lung-nodule candidate model (CT): blob candidates + a 3D CNN.

candidates.py finds blobs inside the lungs, network.py is the classifier,
predictor.py puts both behind the predictor interface, training.py trains it on
synthetic series, evaluate.py measures FROC / CPM on held-out ones. Importing
this package does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..interface import ModelCard

NAME = "lung-nodule"


def load_card() -> ModelCard:
    from .predictor import load_card as _load

    return _load()


def load_predictor(device: str | None = None):
    """The committed model (assist_models/weights/lung_nodule.pt)."""
    from .predictor import LungNodulePredictor

    return LungNodulePredictor(device=device)


def train(out_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """See training.train: writes lung_nodule.pt and lung_nodule.card.json into out_dir."""
    from .training import train as _train

    return _train(out_dir, **kwargs)
