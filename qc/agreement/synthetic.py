"""Synthetic multi-reader reads with known truth, for tests, the benchmark and
the demo: plain data only, seeded and reproducible.

Each case has a few true nodules on a 1 x 0.7 x 0.7 mm grid; each reader finds
each nodule with their own sensitivity, places the centre with a little noise,
draws an ellipse on the slices it spans, rates the attributes with reader
noise, and adds false positives. The reference standard is the truth.
"""

from __future__ import annotations

import numpy as np

from qc.agreement.report import CaseData, Field, LesionRule, Reader, Settings
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


# -- colour fundus photographs (the fundus-dr schema) -----------------------------------

DR_GRADES = (0, 1, 2, 3, 4)
FUNDUS_FIELDS = (
    Field("dr_grade", "ordinal", "DR grade", categories=DR_GRADES, outside_scale=("ungradable",)),
    Field(
        "dmo",
        "enum",
        "Macular oedema",
        categories=("absent", "present"),
        outside_scale=("ungradable",),
    ),
    Field("referable_dr", "boolean", "Referable DR", derived=True),
    Field("vertical_cdr", "number", "Vertical cup-to-disc ratio", derived=True),
)
POINT_TYPES = ("microaneurysm",)
REGION_TYPES = ("haemorrhage", "hard_exudate", "cotton_wool_spot", "neovascularisation")
OUTLINE_TYPES = ("optic_disc", "optic_cup")


def fundus_settings(**overrides) -> Settings:
    """Report settings for fundus photographs: per-type lesion matching, the
    disc and cup as outlines."""
    lesions = LesionRule(point_types=POINT_TYPES, region_types=REGION_TYPES)
    return Settings(lesions=lesions, outline_types=OUTLINE_TYPES, **overrides)


def fundus(
    cases: int = 30, readers: int = 3, seed: int = 11, size: int = 1024
) -> tuple[list[Field], list[Reader], list[CaseData]]:
    """Graded fundus photographs (one `size` x `size` image per case, pixel
    grid): a true DR grade (some ungradable), microaneurysm points and
    haemorrhage / exudate boxes in proportion to the grade, an optic disc and
    cup ellipse; each reader grades with a step of noise, finds each lesion
    with their own sensitivity, draws it a few pixels off and outlines the
    disc and cup with a little error. The derived fields are computed as the
    server computes them (referable: grade >= 2 or oedema; vertical CDR: the
    outlines' row extents)."""
    rng = np.random.default_rng(seed)
    people = [Reader(f"F{k + 1}", f"OPH{k + 1:03d}") for k in range(readers)]
    sens = np.clip(rng.normal(0.8, 0.06, readers), 0.5, 0.98)
    grid = Grid(positions=((0.0, 0.0, 0.0),), rows=size, columns=size, patient_space=False)
    out = []
    for ci in range(cases):
        gradable = rng.random() > 0.08
        grade = int(rng.choice(DR_GRADES, p=[0.4, 0.2, 0.2, 0.1, 0.1]))
        oedema = grade >= 2 and rng.random() < 0.4
        lesions = [
            (t, rng.uniform(150, size - 150, 2), float(rng.uniform(8, 30)))
            for t, count in (("microaneurysm", 3 * grade), ("haemorrhage", grade))
            for _ in range(int(count))
        ] + [("hard_exudate", rng.uniform(150, size - 150, 2), 20.0)] * int(oedema)
        disc = np.asarray([0.7 * size, 0.5 * size])
        disc_r = float(rng.uniform(60, 90))
        cup_share = float(rng.uniform(0.3, 0.7))
        reads, labels = {}, {}
        for k, reader in enumerate(people):
            marks = []
            for t, (kind, centre, extent) in enumerate(lesions):
                if rng.random() >= sens[k]:
                    continue
                c = centre + rng.normal(0, 2.0, 2)
                mid = f"{ci}-{reader.id}-{t}"
                if kind == "microaneurysm":
                    marks.append(Mark(mid, reader.id, kind, (c[0], c[1], 0.0), "point"))
                else:
                    half = extent / 2 * rng.uniform(0.85, 1.15)
                    box = ((c[0] - half, c[1] - half), (c[0] + half, c[1] + half))
                    marks.append(Mark(mid, reader.id, kind, (c[0], c[1], 0.0), "box", ((0, box),)))
            d_r = disc_r * rng.uniform(0.93, 1.07)
            c_r = d_r * float(np.clip(cup_share + rng.normal(0, 0.05), 0.1, 0.9))
            dc = disc + rng.normal(0, 3.0, 2)
            for kind, r in (("optic_disc", d_r), ("optic_cup", c_r)):
                ellipse = ((dc[0] - r, dc[1] - r), (dc[0] + r, dc[1] + r))
                marks.append(
                    Mark(f"{ci}-{reader.id}-{kind}", reader.id, kind, (dc[0], dc[1], 0.0),
                         "ellipse", ((0, ellipse),))
                )  # fmt: skip
            reads[reader.id] = marks
            step = int(rng.choice([-1, 0, 0, 0, 1]))
            given: int | str = int(np.clip(grade + step, 0, 4))
            if not gradable or rng.random() < 0.03:
                given = "ungradable"
            dmo = "present" if oedema != (rng.random() < 0.1) else "absent"
            if given == "ungradable":
                dmo = "ungradable"
            referable = None if given == "ungradable" else (given >= 2 or dmo == "present")
            labels[reader.id] = {
                "dr_grade": given,
                "dmo": dmo,
                "referable_dr": referable,
                "vertical_cdr": round(c_r / d_r, 3),
            }
        out.append(
            CaseData(
                id=f"F{ci + 1:04d}",
                reads=reads,
                labels=labels,
                grid=grid,
                strata={"site": ("H01", "H02")[ci % 2], "manufacturer": "Topcon"},
            )
        )
    return list(FUNDUS_FIELDS), people, out
