"""Radiographs from the synthetic chest radiograph generator (fixtures/xr.py),
as training and evaluation data: the stored pixels with their ground truth.

One generator seed gives one case, drawn the same way every time:

- findings: each of the generator's localised findings (nodule, pneumothorax,
  effusion) present with probability FINDING_P, at most once; their truth is
  the generator's box ([x_min, y_min, x_max, y_max], inclusive pixels);
- exposure: the generator's "under-exposed" / "over-exposed" defects
  (EXPOSURE_P each), otherwise a normal exposure;
- positioning: the generator always centres the patient, so positioning
  faults are made here, after rendering, with known parameters: "tilted"
  (the patient rotated in the image plane by 7-15 degrees) or "off-centre"
  (shifted by 20-28% of the field towards one edge, so a lateral lung edge,
  the apices or the costophrenic angles are cut off), each with probability
  POSITIONING_P / 2; well-positioned images still get a small jitter (up to
  2 degrees and 3%), so "moved at all" is not the cue. The field uncovered by
  the move is filled with the image's own border level and noise. The
  findings' boxes move with the patient; a finding less than half of which
  stays in the field is dropped from the truth (it was cut off);
- acquisition: the matrix (256, 320, 384 or 512 pixels over the generator's
  430 mm field) and the stored polarity (MONOCHROME1, stored as 4095 minus
  the display value, with probability MONOCHROME1_P).

Finding types are named as in the chest radiograph label schema
(annotation_server/projects/label_schemas/chest_radiograph.json): the
generator's "effusion" is "pleural_effusion".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..interface import SeriesVolume

FINDINGS = ("nodule", "pneumothorax", "pleural_effusion")
GENERATOR_FINDING = {
    "nodule": "nodule",
    "pneumothorax": "pneumothorax",
    "pleural_effusion": "effusion",
}
EXPOSURES = ("under-exposed", "over-exposed")
POSITIONING = ("tilted", "off-centre")
SIZES = (256, 320, 384, 512)
FINDING_P = 0.4
EXPOSURE_P = 0.2
POSITIONING_P = 0.3
MONOCHROME1_P = 0.25
MAX_VALUE = 4095
TILT_DEG = (7.0, 15.0)
SHIFT_FRACTION = (0.20, 0.28)
JITTER_DEG = 2.0
JITTER_FRACTION = 0.03


@dataclass(frozen=True)
class TruthFinding:
    type: str  # a schema finding type (FINDINGS)
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max: inclusive pixels


@dataclass(frozen=True)
class CasePlan:
    """What one seed draws, before rendering."""

    seed: int
    size: int
    findings: tuple[str, ...]
    exposure: str | None
    positioning: str | None
    angle_deg: float
    shift: tuple[float, float]  # (rows, columns), fractions of the field
    photometric: str


@dataclass(frozen=True)
class SyntheticRadiograph:
    series: SeriesVolume
    plan: CasePlan
    findings: tuple[TruthFinding, ...] = field(default_factory=tuple)

    def labels(self) -> dict[str, int]:
        """1/0 per class of the model (classes in predictor.CLASSES order)."""
        present = {f.type for f in self.findings}
        return {
            "under_exposed": int(self.plan.exposure == "under-exposed"),
            "over_exposed": int(self.plan.exposure == "over-exposed"),
            "mispositioned": int(self.plan.positioning is not None),
            **{t: int(t in present) for t in FINDINGS},
        }


def plan_case(seed: int, *, size: int | None = None) -> CasePlan:
    rng = np.random.default_rng([seed, 31])
    findings = tuple(t for t in FINDINGS if rng.random() < FINDING_P)
    u = rng.random()
    exposure = EXPOSURES[0] if u < EXPOSURE_P else EXPOSURES[1] if u < 2 * EXPOSURE_P else None
    u = rng.random()
    positioning = (
        POSITIONING[0] if u < POSITIONING_P / 2 else POSITIONING[1] if u < POSITIONING_P else None
    )
    jitter_angle = float(rng.uniform(-JITTER_DEG, JITTER_DEG))
    jitter_shift = rng.uniform(-JITTER_FRACTION, JITTER_FRACTION, size=2)
    if positioning == "tilted":
        angle = float(rng.uniform(*TILT_DEG) * rng.choice([-1.0, 1.0]))
        shift = (float(jitter_shift[0]), float(jitter_shift[1]))
    elif positioning == "off-centre":
        angle = jitter_angle
        amount = float(rng.uniform(*SHIFT_FRACTION))
        axis = int(rng.integers(2))
        sign = float(rng.choice([-1.0, 1.0]))
        moved = [float(jitter_shift[0]), float(jitter_shift[1])]
        moved[axis] = sign * amount
        shift = (moved[0], moved[1])
    else:
        angle = jitter_angle
        shift = (float(jitter_shift[0]), float(jitter_shift[1]))
    chosen = size if size is not None else int(SIZES[int(rng.integers(len(SIZES)))])
    photometric = "MONOCHROME1" if rng.random() < MONOCHROME1_P else "MONOCHROME2"
    return CasePlan(seed, chosen, findings, exposure, positioning, angle, shift, photometric)


def _move(
    display: np.ndarray, angle_deg: float, shift: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The image with the patient rotated by `angle_deg` about the centre and
    shifted by `shift` (fractions of the field); and the 2x3 forward map
    (input (row, col, 1) -> output (row, col)) for the truth boxes."""
    from scipy import ndimage as ndi

    n = display.shape[0]
    centre = np.array([(n - 1) / 2.0, (n - 1) / 2.0])
    t = math.radians(angle_deg)
    # forward rotation in (row, col): a positive angle turns the patient clockwise on screen
    fwd = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    offset_px = np.asarray(shift) * n
    inv = np.linalg.inv(fwd)
    # output o = fwd @ (i - c) + c + s  =>  i = inv @ o + (c - inv @ (c + s))
    in_offset = centre - inv @ (centre + offset_px)
    img = display.astype(np.float32)
    moved = ndi.affine_transform(img, inv, offset=in_offset, order=1, mode="constant", cval=-1.0)
    uncovered = moved < 0.0
    if uncovered.any():
        border = np.concatenate([img[:4].ravel(), img[-4:].ravel(), img[:, :4].ravel()])
        level = float(np.median(border))
        corner = img[: max(8, n // 16), : max(8, n // 16)]
        sd = float(np.std(np.diff(corner, axis=1)) / math.sqrt(2.0))
        fill = level + sd * rng.standard_normal(int(uncovered.sum())).astype(np.float32)
        moved[uncovered] = fill
    forward = np.hstack([fwd, (centre + offset_px - fwd @ centre)[:, None]])
    return np.clip(moved, 0.0, MAX_VALUE), forward


def _move_box(
    box: list[int], forward: np.ndarray, n: int, *, round_shape: bool
) -> tuple[float, float, float, float] | None:
    """The box after the move, clipped to the field: a round finding's box
    keeps its size about the moved centre, any other becomes the bounding box
    of its moved corners. None when less than half of it stays in the field."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if round_shape:
        r, c = forward @ np.array([(y0 + y1) / 2.0, (x0 + x1) / 2.0, 1.0])
        hr, hc = (y1 - y0) / 2.0, (x1 - x0) / 2.0
        r0, c0, r1, c1 = r - hr, c - hc, r + hr, c + hc
    else:
        corners = np.array([[y0, x0, 1], [y0, x1, 1], [y1, x0, 1], [y1, x1, 1]], dtype=float)
        rc = corners @ forward.T
        r0, c0 = rc.min(axis=0)
        r1, c1 = rc.max(axis=0)
    area = (r1 - r0 + 1) * (c1 - c0 + 1)
    cr0, cc0 = max(r0, 0.0), max(c0, 0.0)
    cr1, cc1 = min(r1, n - 1.0), min(c1, n - 1.0)
    if cr1 < cr0 or cc1 < cc0 or (cr1 - cr0 + 1) * (cc1 - cc0 + 1) < 0.5 * area:
        return None
    return (round(float(cc0), 2), round(float(cr0), 2), round(float(cc1), 2), round(float(cr1), 2))


def synthetic_radiograph(
    seed: int, *, size: int | None = None, **overrides: Any
) -> SyntheticRadiograph:
    """One generated radiograph: stored pixels (1, rows, columns) as a
    SeriesVolume (modality DX) and its truth. `overrides` replace fields of
    the seed's plan (findings, exposure, positioning, angle_deg, shift,
    photometric), for tests."""
    from dataclasses import replace

    from fixtures.xr import FIELD_MM, render_xr

    plan = plan_case(seed, size=size)
    if overrides:
        plan = replace(plan, **overrides)
    generator_findings = tuple(GENERATOR_FINDING[t] for t in plan.findings)
    display, found, _ = render_xr(plan.size, seed, generator_findings, plan.exposure)
    moved, forward = _move(display, plan.angle_deg, plan.shift, np.random.default_rng([seed, 32]))
    truth = []
    by_generator = {v: k for k, v in GENERATOR_FINDING.items()}
    for f in found:
        box = _move_box(f["box"], forward, plan.size, round_shape=f["type"] == "nodule")
        if box is not None:
            truth.append(TruthFinding(by_generator[f["type"]], box))  # type: ignore[arg-type]
    display_u16 = np.rint(moved).astype(np.uint16)
    stored = display_u16 if plan.photometric == "MONOCHROME2" else MAX_VALUE - display_u16
    ps = FIELD_MM / plan.size
    series = SeriesVolume(
        pixels=stored.astype(np.float32)[None],
        spacing=(1.0, ps, ps),
        modality="DX",
        series_uid=f"synthetic-xr-{seed}",
    )
    return SyntheticRadiograph(series, plan, tuple(truth))
