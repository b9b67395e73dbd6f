"""What the built-in models share around their weights and cards (no torch here):
checking the weights a predictor loads against its card, carrying measured
figures over to a retrained card only when the weights are the same, and
writing a card next to its weights."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .interface import ModelCard, sha256_of


def checked_weights(
    weights: str | Path, card: ModelCard | None, load_card: Callable[[Path], ModelCard]
) -> tuple[Path, ModelCard, str]:
    """(weights path, card, sha256): the card beside the weights unless one is
    given; a card naming other weights than these is refused."""
    path = Path(weights)
    card = card if card is not None else load_card(path.with_suffix(".card.json"))
    sha = sha256_of(path)
    if card.weights_sha256 and card.weights_sha256 != sha:
        raise ValueError(f"{path}: sha256 {sha} differs from the card's {card.weights_sha256}")
    return path, card, sha


def measured_figures(card_path: Path, sha: str) -> dict[str, Any]:
    """`performance` and `performance_command` of the card already at `card_path`
    when it describes these very weights (measured figures belong to the weights
    they were measured on), else empty ones."""
    if card_path.is_file():
        data = json.loads(card_path.read_text(encoding="utf-8"))
        if data.get("weights_sha256") == sha:
            return {
                "performance": data.get("performance", {}),
                "performance_command": data.get("performance_command", ""),
            }
    return {"performance": {}, "performance_command": ""}


def write_card(card_path: Path, card: ModelCard) -> Path:
    card_path.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    return card_path


def write_performance(card_path: Path, figures: dict[str, float], command: str) -> None:
    """Put freshly measured figures and the command that measured them on the card
    at `card_path`. Speed figures (`speed_*`, from the bench scripts) and the
    command part naming them stay: an accuracy evaluation does not measure speed."""
    data = json.loads(card_path.read_text(encoding="utf-8"))
    old = data.get("performance", {})
    speed = {k: v for k, v in old.items() if k.startswith("speed_")}
    tail = data.get("performance_command", "").partition("; speed:")[2]
    data["performance"] = {**figures, **speed}
    data["performance_command"] = command + (f"; speed:{tail}" if speed and tail else "")
    card_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@contextmanager
def reproducible_torch():
    """One CPU thread and deterministic algorithms while training, so the same seed
    gives the same weights byte for byte; the caller's settings come back after."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
