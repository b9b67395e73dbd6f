"""Where a model runs: CUDA when a usable GPU is present, else the CPU."""

from __future__ import annotations

from collections.abc import Callable


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def select_device(
    requested: str | None = None, *, cuda_available: Callable[[], bool] = _cuda_available
) -> str:
    """ "cuda" or "cpu". `requested` ("cuda", "cuda:1", "cpu") wins when it can
    be honoured; asking for CUDA on a machine without it falls back to the CPU
    rather than failing a pre-labeling job."""
    if requested is not None:
        requested = requested.strip().lower()
        if requested == "cpu":
            return "cpu"
        if not requested.startswith("cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', not {requested!r}")
        return requested if cuda_available() else "cpu"
    return "cuda" if cuda_available() else "cpu"
