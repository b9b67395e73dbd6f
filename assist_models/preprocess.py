"""Input preparation shared by every model: resampling and windowing."""

from __future__ import annotations

import numpy as np


def target_shape(
    shape: tuple[int, int, int], spacing: tuple[float, ...], target: tuple[float, ...]
) -> tuple[int, int, int]:
    return tuple(  # type: ignore[return-value]
        max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target, strict=True)
    )


def resample(
    pixels: np.ndarray, spacing: tuple[float, ...], target: tuple[float, ...] | None
) -> np.ndarray:
    """`pixels` (slices, rows, columns) resampled (trilinear) from `spacing` to
    `target` spacing (mm); float32. `target` None or equal: a float32 copy."""
    if target is None:
        return np.asarray(pixels, dtype=np.float32)
    return resize(pixels, target_shape(pixels.shape, spacing, target))


def resize(pixels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`pixels` (3-D) resized (trilinear) to `shape`; float32."""
    shape = tuple(int(n) for n in shape)
    if shape == tuple(pixels.shape):
        return np.asarray(pixels, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(pixels, dtype=np.float32))[None, None]
    with torch.no_grad():
        out = F.interpolate(t, size=shape, mode="trilinear", align_corners=False)
    return out[0, 0].numpy()


def apply_window(pixels: np.ndarray, window: tuple[float, float] | None) -> np.ndarray:
    """Clip to (centre, width) and scale to [0, 1]; None: unchanged (float32)."""
    if window is None:
        return np.asarray(pixels, dtype=np.float32)
    centre, width = window
    lo = centre - width / 2.0
    out = (np.asarray(pixels, dtype=np.float32) - np.float32(lo)) / np.float32(width)
    return np.clip(out, 0.0, 1.0, out=out)
