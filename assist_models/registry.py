"""The registry of assist models: explicit, never filled by imports.

Built-in models are listed in BUILTIN_MODELS by dotted path (their card
loader and their predictor factory), so listing or describing them imports
neither torch nor their weights. Users' TorchScript plug-ins are added to a
registry instance explicitly (`register_torchscript(folder)`), after their
config is validated; the app keeps which folders are registered and builds a
registry from them. Nothing registers itself by being imported.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .interface import ModelCard, Predictor
from .torchscript import TorchScriptPredictor, read_plugin

# name -> (card loader, predictor factory(device=None)), dotted paths.
BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    "lung-nodule": (
        "assist_models.lung_nodule.load_card",
        "assist_models.lung_nodule.load_predictor",
    ),
    "chest-radiograph": (
        "assist_models.chest_radiograph.load_card",
        "assist_models.chest_radiograph.load_predictor",
    ),
}


class RegistryError(LookupError):
    pass


def _resolve(dotted: str) -> Callable[..., Any]:
    module, _, attr = dotted.rpartition(".")
    return getattr(importlib.import_module(module), attr)


class ModelRegistry:
    def __init__(
        self,
        builtins: Mapping[str, tuple[str, str]] = BUILTIN_MODELS,
        plugins: Mapping[str, str | Path] | None = None,
    ):
        self._builtins = dict(builtins)
        self._plugins: dict[str, Path] = {}
        for folder in (plugins or {}).values():
            self.register_torchscript(folder)

    def names(self) -> list[str]:
        return sorted([*self._builtins, *self._plugins])

    def register_torchscript(self, folder: str | Path) -> ModelCard:
        """Add a plug-in folder (model.pt + config.json) under its config's name.
        Raises torchscript.ConfigError for a bad folder or config, RegistryError
        when the name is taken."""
        _, card = read_plugin(folder)
        if card.name in self._builtins or card.name in self._plugins:
            raise RegistryError(f"an assist model named {card.name!r} is already registered")
        self._plugins[card.name] = Path(folder)
        return card

    def unregister(self, name: str) -> None:
        if name not in self._plugins:
            raise RegistryError(f"no plug-in named {name!r} (built-in models stay)")
        del self._plugins[name]

    def card(self, name: str) -> ModelCard:
        if name in self._builtins:
            return _resolve(self._builtins[name][0])()
        if name in self._plugins:
            return read_plugin(self._plugins[name])[1]
        raise RegistryError(self._unknown(name))

    def load(self, name: str, device: str | None = None) -> Predictor:
        """The model's predictor on `device` (None: CUDA when present, else CPU)."""
        if name in self._builtins:
            return _resolve(self._builtins[name][1])(device=device)
        if name in self._plugins:
            return TorchScriptPredictor(self._plugins[name], device=device)
        raise RegistryError(self._unknown(name))

    def _unknown(self, name: str) -> str:
        return f"no assist model named {name!r}; known: {', '.join(self.names()) or 'none'}"
