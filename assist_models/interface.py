"""The one interface every pre-labeling model sits behind.

A predictor takes a `SeriesVolume` (the series' voxels as a NumPy array plus
its geometry) and returns a `Prediction`: proposals (a finding type, geometry
in the readers' finding model, attributes, a confidence) and/or case-level
probabilities. Every prediction names the model, its version and the sha256
of its weights, so whatever stores a proposal can say where it came from.

Geometry is the workstation's model (annotation_server/reading/geometry.py,
export/model.py): {"kind": K, "shapes": [{"slice_index": i, "points":
[[col, row], ...]}], "centre_mm": [x, y, z] | None}, points in image pixel
coordinates of slice `slice_index` (slices sorted along the slice normal).

A `ModelCard` travels with every model (built-in or plug-in): what it does,
on what input, what it was trained on, how well it did (and the command that
measured it), what it is for and not for, its licence and its weights' sha256.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

Vec3 = tuple[float, float, float]
TASKS = ("detection", "classification")


@dataclass(frozen=True)
class SeriesVolume:
    """One series' voxels and geometry.

    `pixels` is (slices, rows, columns) in modality units (HU for CT, after
    RescaleSlope/Intercept), slices sorted along the slice normal. `spacing`
    is (between slices, between rows, between columns) in mm; `origin` is
    ImagePositionPatient of slice 0; `orientation` is ImageOrientationPatient
    (the direction of increasing column, then of increasing row).
    """

    pixels: np.ndarray
    spacing: Vec3
    origin: Vec3 = (0.0, 0.0, 0.0)
    orientation: tuple[float, float, float, float, float, float] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    modality: str = "CT"
    series_uid: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.pixels, np.ndarray) or self.pixels.ndim != 3:
            raise ValueError("pixels must be a 3-D array (slices, rows, columns)")
        if len(self.spacing) != 3 or not all(
            math.isfinite(float(s)) and float(s) > 0 for s in self.spacing
        ):
            raise ValueError("spacing must be three positive numbers (slice, row, column) in mm")
        if len(self.origin) != 3 or len(self.orientation) != 6:
            raise ValueError("origin needs 3 numbers and orientation 6")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.pixels.shape)  # type: ignore[return-value]

    def index_to_mm(self, slice_index: float, row: float, column: float) -> Vec3:
        """Patient-space position (mm) of a (possibly fractional) voxel index."""
        row_dir = np.asarray(self.orientation[:3], dtype=float)
        col_dir = np.asarray(self.orientation[3:], dtype=float)
        normal = np.cross(row_dir, col_dir)
        ds, dr, dc = (float(s) for s in self.spacing)
        p = (
            np.asarray(self.origin, dtype=float)
            + column * dc * row_dir
            + row * dr * col_dir
            + slice_index * ds * normal
        )
        return (round(float(p[0]), 3), round(float(p[1]), 3), round(float(p[2]), 3))


@dataclass(frozen=True)
class Proposal:
    """One machine-proposed finding, in the same form as a reader's finding."""

    finding_type: str
    geometry: dict[str, Any]
    confidence: float
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """What a predictor returns for one series."""

    model: str
    version: str
    weights_sha256: str
    threshold: float | None  # the threshold in force (proposals below it were dropped)
    proposals: tuple[Proposal, ...] = ()
    case_probabilities: dict[str, float] = field(default_factory=dict)


class CardError(ValueError):
    """A model card that is incomplete or malformed; the message names the fields."""


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    task: str  # one of TASKS
    modality: str
    input_spacing_mm: Vec3 | None  # (slice, row, column); None: native spacing
    window: tuple[float, float] | None  # (centre, width) in modality units; None: none
    classes: tuple[str, ...]
    training_data: str
    performance: dict[str, float]
    performance_command: str
    intended_use: str
    limitations: str
    licence: str
    weights_sha256: str
    thresholds: dict[str, float] = field(default_factory=dict)
    default_threshold: float | None = None

    def missing(self) -> list[str]:
        """Names of the fields a complete card must fill and this one leaves empty."""
        required = (
            "name",
            "version",
            "task",
            "modality",
            "classes",
            "training_data",
            "performance",
            "performance_command",
            "intended_use",
            "limitations",
            "licence",
            "weights_sha256",
        )
        return [n for n in required if not getattr(self, n)]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classes"] = list(self.classes)
        for key in ("input_spacing_mm", "window"):
            out[key] = None if out[key] is None else list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """A card from JSON-like data; raise CardError naming every bad field."""
        if not isinstance(data, dict):
            raise CardError("a model card must be a JSON object")
        names = {f.name for f in fields(cls)}
        errors = [f"unknown field {k!r}" for k in sorted(set(data) - names)]
        optional = {"thresholds", "default_threshold"}
        errors += [f"missing field {n!r}" for n in sorted(names - set(data) - optional)]
        if errors:
            raise CardError("; ".join(errors))
        values = dict(data)
        if values["task"] not in TASKS:
            errors.append(f"task must be one of {', '.join(TASKS)}, not {values['task']!r}")
        for key, n in (("input_spacing_mm", 3), ("window", 2)):
            v = values[key]
            if v is not None:
                if not isinstance(v, list | tuple) or len(v) != n:
                    errors.append(f"{key} must be {n} numbers or null")
                else:
                    values[key] = tuple(float(x) for x in v)
        if not isinstance(values["performance"], dict):
            errors.append("performance must be an object of name -> number")
        if errors:
            raise CardError("; ".join(errors))
        values["classes"] = tuple(values["classes"])
        return cls(**values)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@runtime_checkable
class Predictor(Protocol):
    """Every model: a card and one call."""

    card: ModelCard
    device: str

    def predict(self, series: SeriesVolume, *, threshold: float | None = None) -> Prediction: ...
