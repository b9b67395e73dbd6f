"""Synthetic multi-reader reads with known truth, for tests, the benchmark and
the demo: plain data only, seeded and reproducible.

Each case has a few true nodules on a 1 x 0.7 x 0.7 mm grid; each reader finds
each nodule with their own sensitivity, places the centre with a little noise,
draws an ellipse on the slices it spans, rates the attributes with reader
noise, and adds false positives. The reference standard is the truth.
"""

from __future__ import annotations

import numpy as np

from qc.agreement.report import CaseData, Field, Reader
from qc.matching import Grid, Mark

NODULE_TYPES = ("solid", "part_solid", "ground_glass", "calcified")

FIELDS = (
    Field("nodule_type", "enum", "Nodule type", "nodule", NODULE_TYPES),
    Field("malignancy", "ordinal", "Malignancy", "nodule"),
    Field("long_axis_mm", "number", "Long axis", "nodule", unit="mm"),
    Field("nodules_present", "boolean", "Nodules present"),
    Field("image_quality", "ordinal", "Image quality"),
)


def generate(
    cases: int = 50,
    readers: int = 4,
    findings: int | None = None,
    seed: int = 7,
    weeks: int = 4,
    shapes: bool = True,
) -> tuple[list[Field], list[Reader], list[CaseData]]:
    """`findings`: about how many marks in all (default 1.75 per read)."""
    rng = np.random.default_rng(seed)
    per_read = (findings / (cases * readers)) if findings else 1.75
    sens = np.clip(rng.normal(0.85, 0.07, readers), 0.5, 0.99)
    fp_rate = max(per_read - 0.85 * per_read / 1.1, 0.05)
    truth_rate = per_read / 1.1
    bands = ["<5", "5-9", "10-19", ">=20"]
    people = [Reader(f"R{k + 1}", f"RD{k + 1:03d}", bands[k % len(bands)]) for k in range(readers)]
    grid = Grid.regular(60, spacing=(1.0, 0.7, 0.7), rows=256, columns=256)
    sites, vendors, bands_mm = (
        ["S01", "S02", "S03"],
        ["GE", "Siemens", "Philips"],
        ["<=1.25", ">1.25"],
    )
    out = []
    for ci in range(cases):
        n_true = rng.poisson(truth_rate)
        true = []
        for _ in range(n_true):
            centre = rng.uniform([20, 20, 10], [160, 160, 50])
            size = float(rng.gamma(4.0, 2.5))
            kind = int(rng.integers(0, len(NODULE_TYPES)))
            malig = int(np.clip(round(1 + size / 6 + rng.normal(0, 0.7)), 1, 5))
            true.append((centre, size, kind, malig))
        reference = [
            _mark(f"ref-{ci}-{t}", "reference", c, s, k, m, grid, shapes)
            for t, (c, s, k, m) in enumerate(true)
        ]
        reads = {}
        labels = {}
        quality = int(rng.integers(2, 6))
        for k, reader in enumerate(people):
            marks = []
            for t, (centre, size, kind, malig) in enumerate(true):
                if rng.random() < sens[k]:
                    c = centre + rng.normal(0, 0.8, 3)
                    s = max(size + rng.normal(0, 0.15 * size + 0.5), 1.0)
                    kk = kind if rng.random() < 0.8 else int(rng.integers(0, len(NODULE_TYPES)))
                    mm = int(np.clip(malig + rng.choice([-1, 0, 0, 0, 1]), 1, 5))
                    marks.append(
                        _mark(f"{ci}-{reader.id}-{t}", reader.id, c, s, kk, mm, grid, shapes)
                    )
            for f in range(rng.poisson(fp_rate)):
                c = rng.uniform([20, 20, 10], [160, 160, 50])
                marks.append(
                    _mark(
                        f"{ci}-{reader.id}-fp{f}",
                        reader.id,
                        c,
                        float(rng.gamma(3, 1.5)),
                        int(rng.integers(0, 4)),
                        int(rng.integers(1, 4)),
                        grid,
                        shapes,
                    )
                )
            reads[reader.id] = marks
            labels[reader.id] = {
                "nodules_present": bool(marks),
                "image_quality": int(np.clip(quality + rng.choice([-1, 0, 0, 1]), 1, 5)),
            }
        out.append(
            CaseData(
                id=f"C{ci + 1:04d}",
                reads=reads,
                labels=labels,
                reference=reference,
                grid=grid,
                strata={
                    "site": sites[ci % 3],
                    "manufacturer": vendors[(ci // 3) % 3],
                    "thickness_band": bands_mm[ci % 2],
                },
                week=f"2026-W{40 + ci * weeks // max(cases, 1):02d}",
            )
        )
    return list(FIELDS), people, out


def _mark(mid, reader, centre, size, kind, malig, grid: Grid, shapes: bool) -> Mark:
    s, col, row = grid.to_index(*centre)
    r_px = size / 2 / grid.pixel_spacing[0]
    half = max(int(size / 2 / grid.slice_spacing), 0)
    drawn = ()
    if shapes:
        drawn = tuple(
            (
                int(round(s)) + dz,
                ((col - r_px, row - r_px * 0.9), (col + r_px, row + r_px * 0.9)),
            )
            for dz in range(-half, half + 1)
        )
    return Mark(
        id=mid,
        reader=reader,
        finding_type="nodule",
        centre_mm=(float(centre[0]), float(centre[1]), float(centre[2])),
        kind="ellipse" if shapes else "point",
        shapes=drawn,
        attributes={
            "nodule_type": NODULE_TYPES[kind],
            "malignancy": malig,
            "long_axis_mm": round(size, 1),
        },
    )
