"""Measure the fundus photo QC metrics on the synthetic fixtures, per defect and level.

    .venv/bin/python -m tests.qc.photo_measure [--size 1024] [--seeds 0 1 2]

Each variant is encoded as the camera would hand it over (JPEG, quality 95, 4:4:4) and
decoded again before measuring; each cell is the min..max over the seeds. The default
thresholds in ``qc.profile.Profile`` (photo_*) were set from this table; the tests in
``tests/qc/test_photo_rules.py`` use the same variants (``variants``).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Iterator

import numpy as np
from PIL import Image

from fixtures import fundus
from qc.rules.photo import photo_metrics

COLUMNS = (
    ("sharpness", "sharp", "{:.1f}"),
    ("clipped_fraction", "clip", "{:.3f}"),
    ("mean_luma", "luma", "{:.0f}"),
    ("dark_fraction", "dark", "{:.3f}"),
    ("fov_roundness", "round", "{:.2f}"),
    ("fov_diameter_fraction", "diam", "{:.2f}"),
    ("fov_offset", "offset", "{:.3f}"),
    ("fov_inside", "inside", "{:.2f}"),
    ("short_side_px", "side", "{:.0f}"),
    ("colour_spread", "spread", "{:.1f}"),
)


def jpeg_roundtrip(rgb: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, subsampling=0)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def variants(seed: int, size: int = 1024) -> Iterator[tuple[str, int, np.ndarray]]:
    """(defect or "clean", level, RGB pixels) of one seed: clean, then every defect x level."""
    lat = ("OD", "OS")[seed % 2]
    grade = seed % 5
    clean, _ = fundus.build_fundus(seed, size=size, grade=grade, laterality=lat)
    yield "clean", 0, clean
    for name in fundus.FUNDUS_DEFECTS:
        levels = (1,) if name in ("no-fov", "greyscale", "burned-in-text") else (1, 2, 3)
        for level in levels:
            if name == "off-centre":
                rgb, _ = fundus.build_fundus(
                    seed, "off-centre", level=level, size=size, grade=grade, laterality=lat
                )
            elif name == "burned-in-text":
                rgb = clean.copy()
                fundus.burn_overlay(rgb, ["WANG XIAOMING", "ID ZY31415926", "20230506"])
            else:
                rgb, _ = fundus.degrade(clean, name, level, seed)
            yield name, level, rgb


def table(seeds: list[int], size: int) -> str:
    rows: dict[tuple[str, int], list[dict]] = {}
    for seed in seeds:
        for name, level, rgb in variants(seed, size):
            rows.setdefault((name, level), []).append(photo_metrics(jpeg_roundtrip(rgb)))
    head = f"{'variant':<16}{'lvl':>4} " + " ".join(f"{h:>12}" for _, h, _ in COLUMNS)
    lines = [head, "-" * len(head)]
    for (name, level), ms in rows.items():
        cells = []
        for key, _, fmt in COLUMNS:
            vals = [m[key] for m in ms if m[key] is not None]
            if not vals:
                cells.append(f"{'-':>12}")
                continue
            lo, hi = fmt.format(min(vals)), fmt.format(max(vals))
            cells.append(f"{lo if lo == hi else lo + '..' + hi:>12}")
        lines.append(f"{name:<16}{level:>4} " + " ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.qc.photo_measure")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    print(table(args.seeds, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
