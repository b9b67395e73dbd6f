"""Series from the synthetic CT generator (fixtures/ct.py), as training and
evaluation data: the volume (HU) with its geometry and the planted nodules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..interface import SeriesVolume

# Acquisition settings the training and evaluation series are drawn from:
# the generator's default (0.7 mm pixels, 1.25 mm slices, 512 matrix) and a
# coarser one (1.4 mm, 2.5 mm slices, 256 matrix) over the same field of view.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "fine": {"matrix": 512, "pixel_spacing": 0.7, "spacing": 1.25, "slices": 200},
    "coarse": {"matrix": 256, "pixel_spacing": 1.4, "spacing": 2.5, "slices": 100},
}


@dataclass(frozen=True)
class PlantedNodule:
    centre_mm: tuple[float, float, float]
    diameter_mm: float
    type: str


def synthetic_series(
    seed: int, protocol: str = "fine", *, nodules: int = 5, noise_hu: float = 12.0, **opts: Any
) -> tuple[SeriesVolume, list[PlantedNodule]]:
    """One generated series (HU volume + geometry) and its planted nodules."""
    from fixtures.ct import plan_ct, render_slice_hu

    settings = {**PROTOCOLS[protocol], **opts}
    slices = settings.pop("slices")
    plan = plan_ct(slices, seed, nodules=nodules, noise_hu=noise_hu, **settings)
    pixels = np.stack([render_slice_hu(plan, sp) for sp in plan.slices])
    geo = plan.truth["geometry"]
    series = SeriesVolume(
        pixels=pixels,
        spacing=(
            float(geo["spacing_between_slices_mm"]),
            float(geo["pixel_spacing_mm"][0]),
            float(geo["pixel_spacing_mm"][1]),
        ),
        origin=tuple(float(v) for v in geo["origin_mm"]),  # type: ignore[arg-type]
        orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
        modality="CT",
        series_uid=plan.truth["series_instance_uid"],
    )
    truth = [
        PlantedNodule(tuple(float(v) for v in n["centre_mm"]), float(n["diameter_mm"]), n["type"])  # type: ignore[arg-type]
        for n in plan.truth["nodules"]
    ]
    return series, truth
