"""QC profiles: which rules run and with which thresholds (loadable from JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

CROSS_SECTIONAL = ("CT", "MR", "PT")
RADIOGRAPH = ("CR", "DX")


@dataclass(frozen=True)
class Profile:
    """Thresholds for one kind of reference dataset (defaults: lung CT)."""

    name: str = "lung-ct"
    modalities: tuple[str, ...] = ("CT",)
    body_part: str | None = "CHEST"
    # None = every registry rule that applies to the modality; otherwise exactly these.
    rules: tuple[str, ...] | None = None
    disabled: tuple[str, ...] = ()
    # slice geometry
    max_slice_thickness_mm: float = 1.25  # warn above
    fail_slice_thickness_mm: float = 2.5  # fail above
    min_slices: int | None = 100
    max_slices: int | None = None
    gap_factor: float = 1.5  # step > gap_factor * median step -> missing slice(s)
    duplicate_tolerance_mm: float = 0.01
    max_spacing_deviation: float = 0.1  # |step - median| / median: warn above
    fail_spacing_deviation: float = 0.3  # fail above
    orientation_tolerance: float = 0.01  # max abs difference of direction cosines
    pixel_spacing_min_mm: float = 0.1
    pixel_spacing_max_mm: float = 5.0
    # CT pixels
    air_hu: float = -1000.0
    soft_tissue_hu: float = 40.0
    hu_warn_tolerance: float = 50.0
    hu_fail_tolerance: float = 100.0
    max_noise_hu: float = 30.0  # warn above
    fail_noise_hu: float = 60.0
    max_truncation_fraction: float = 0.05  # body pixels on an image edge: warn above
    fail_truncation_fraction: float | None = None
    max_metal_fraction: float = 0.0005  # voxels > metal_hu: warn above
    fail_metal_fraction: float = 0.005
    metal_hu: float = 2500.0
    # radiograph pixels (display values normalised to 0..1, bright = dense)
    max_clipped_fraction: float = 0.05  # warn above; fail above 2x
    min_mean_display: float = 0.3
    max_mean_display: float = 0.7
    min_dynamic_range: float = 0.5  # p99 - p1: warn below
    max_asymmetry: float = 0.25  # |left - right| / mean of the lung fields: warn above
    max_foreign_fraction: float = 0.005  # saturated pixels in the central field: warn above
    # burned-in text
    text_min_rows: int = 3

    @classmethod
    def default_for(cls, modality: str) -> Profile:
        """Sensible defaults: lung CT for CT, PA chest radiograph for CR/DX, lenient otherwise."""
        m = (modality or "").upper()
        if m == "CT":
            return cls()
        if m in RADIOGRAPH:
            return cls(
                name=f"chest-{m.lower()}",
                modalities=RADIOGRAPH,
                min_slices=1,
                max_slices=None,
            )
        return cls(
            name=f"generic-{m.lower() or 'unknown'}",
            modalities=(m,) if m else (),
            body_part=None,
            max_slice_thickness_mm=5.0,
            fail_slice_thickness_mm=10.0,
            min_slices=None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Build from a dict; ``"base": "CT"`` starts from that modality's defaults."""
        data = dict(data)
        base = data.pop("base", None)
        start = cls.default_for(base) if base else cls()
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown profile field(s): {', '.join(unknown)}")
        for key in ("modalities", "rules", "disabled"):
            if key in data and data[key] is not None:
                if isinstance(data[key], str):
                    raise ValueError(f"profile field {key!r} must be a list")
                data[key] = tuple(str(v) for v in data[key])
        return replace(start, **data)

    @classmethod
    def from_json(cls, path: str | Path) -> Profile:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict):
            raise ValueError("a profile file must hold a JSON object")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("modalities", "rules", "disabled"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out

    def wants(self, rule: str) -> bool:
        if rule in self.disabled:
            return False
        return self.rules is None or rule in self.rules
