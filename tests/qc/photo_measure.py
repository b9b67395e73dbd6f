"""Measure the fundus photo QC metrics on the synthetic fixtures, per defect and level.

    .venv/bin/python -m tests.qc.photo_measure --seeds 0 1 2 3 4

Each variant is encoded as the camera would hand it over (JPEG, quality 95, 4:4:4) and
decoded again before measuring; each cell is the min..max over the seeds (seed s has DR
grade s % 5, right eye for even seeds, 1024 px). The tests in
``tests/qc/test_photo_rules.py`` use the same variants (``variants``). Output of the
command above (2026-12-05):

variant          lvl        sharp         clip         luma         dark         side       spread
--------------------------------------------------------------------------------------------------
clean              0   19.9..21.8        0.000       91..93        0.009         1024 125.3..127.9
blur               1   13.6..15.3        0.000       91..93        0.006         1024 125.1..127.8
blur               2     6.7..8.6        0.000       91..93        0.004         1024 124.8..127.4
blur               3     2.0..3.6        0.000       90..92        0.003         1024 123.7..126.3
over-exposed       1   19.0..20.7 0.511..0.560     141..143        0.011         1024 182.5..185.5
over-exposed       2   17.8..19.9 0.930..0.960     171..174        0.013         1024 181.0..181.5
over-exposed       3   17.6..19.6 0.950..0.956     205..208        0.014         1024 157.3..158.8
under-exposed      1   20.0..21.9        0.000       46..47 0.011..0.014         1024   62.5..63.9
under-exposed      2   20.1..21.9        0.000       27..28 0.041..0.071         1024   37.5..38.4
under-exposed      3   20.2..22.4        0.000           14 0.986..0.993         1024   18.9..19.4
off-centre         1   20.1..21.7        0.000       92..94        0.006         1024 126.6..129.2
off-centre         2   20.1..22.1        0.000       94..96        0.005         1024 128.1..131.4
off-centre         3   19.6..22.7        0.000       95..97 0.004..0.005         1024 129.3..133.4
no-fov             1   21.3..21.6        0.000            4        1.000         1024          1.4
small              1   20.1..21.9        0.000       92..93 0.006..0.007          640 125.5..128.2
small              2   18.9..20.9        0.000       91..93 0.009..0.010          448 125.1..127.8
small              3   13.4..15.9        0.000       90..92        0.017          256 124.0..126.6
greyscale          1   15.5..17.1        0.000       91..93 0.008..0.009         1024          0.0
burned-in-text     1   19.9..21.8        0.000       91..93        0.009         1024 125.3..127.9

variant          lvl        round         diam       offset       inside
------------------------------------------------------------------------
clean              0         1.00         0.92        0.001         1.00
blur               1         1.00         0.92        0.001         1.00
blur               2         1.00         0.92        0.001         1.00
blur               3         1.00         0.93        0.001         1.00
over-exposed       1         1.00         0.92        0.001         1.00
over-exposed       2         1.00         0.93        0.001         1.00
over-exposed       3         1.00         0.93        0.001         1.00
under-exposed      1         1.00         0.92        0.001         1.00
under-exposed      2         1.00         0.92        0.001         1.00
under-exposed      3         1.00         0.92        0.001         1.00
off-centre         1         1.00         0.92        0.117   0.96..0.97
off-centre         2         1.00         0.92        0.211         0.87
off-centre         3         1.00         0.92        0.327         0.71
no-fov             1            -            -            -            -
small              1         1.00         0.92        0.000         1.00
small              2         1.00         0.92        0.000         1.00
small              3         0.99         0.93        0.000         1.00
greyscale          1         1.00         0.92        0.001         1.00
burned-in-text     1         1.00         0.92        0.001         1.00

The defaults in ``qc.profile.Profile`` (photo_*), each between the clean images and the
mildest defect level:

- sharpness warn < 17.5, fail < 11: clean 19.9-21.8; blur level 1 (sigma 1.5 px per
  1024) 13.6-15.3 warns, level 2 (6.7-8.6) and 3 fail. Exposure defects stay above
  17.5; the greyscale and 256 px variants warn here too (their own rules fail them).
- clipped fraction warn > 2 %, fail > 4 %; mean luma warn > 130, fail > 162: clean
  clips nothing (luma 91-93); over-exposure level 1 clips 51-56 % (fail).
- mean luma warn < 60, fail < 36; dark fraction (luma < 20) warn > 10 %, fail > 20 %:
  under-exposure level 1 (46-47) warns, levels 2 (27-28) and 3 (14, 99 % dark) fail.
- field of view: roundness >= 0.9 (clean 1.00); centre offset warn > 5 %, fail > 10 %
  of the short side (off-centre level 1 is 11.7 %: fail); inside-the-frame warn < 0.8,
  fail < 0.7; diameter warn < 0.6 of the short side (clean 0.92; real cameras that cut
  the circle at top and bottom exceed 1). The empty frame has no field: fail.
- short side warn < 800 px, fail < 512 px: a microaneurysm is 25-125 um and a 45 degree
  field spans about 12 mm of retina, so at 800 px (15 um/px) the smallest still span
  2 px; under 512 px they vanish into single pixels. Levels 640 / 448 / 256 px give
  warn / fail / fail.
- colour spread (mean max-min channel inside the field) fail < 8: clean 125-128, the
  darkest under-exposed image 19, greyscale 0.
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


BLOCKS = (
    ("sharpness", "clipped_fraction", "mean_luma", "dark_fraction", "short_side_px",
     "colour_spread"),
    ("fov_roundness", "fov_diameter_fraction", "fov_offset", "fov_inside"),
)  # fmt: skip


def table(seeds: list[int], size: int) -> str:
    """Two blocks of columns (pixels, field of view), each under 100 characters wide."""
    rows: dict[tuple[str, int], list[dict]] = {}
    for seed in seeds:
        for name, level, rgb in variants(seed, size):
            rows.setdefault((name, level), []).append(photo_metrics(jpeg_roundtrip(rgb)))
    spec = {key: (head, fmt) for key, head, fmt in COLUMNS}
    out: list[str] = []
    for block in BLOCKS:
        head = f"{'variant':<16}{'lvl':>4} " + " ".join(f"{spec[k][0]:>12}" for k in block)
        lines = [head, "-" * len(head)]
        for (name, level), ms in rows.items():
            cells = []
            for key in block:
                fmt = spec[key][1]
                vals = [m[key] for m in ms if m[key] is not None]
                if not vals:
                    cells.append(f"{'-':>12}")
                    continue
                lo, hi = fmt.format(min(vals)), fmt.format(max(vals))
                cells.append(f"{lo if lo == hi else lo + '..' + hi:>12}")
            lines.append(f"{name:<16}{level:>4} " + " ".join(cells))
        out.append("\n".join(lines))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.qc.photo_measure")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    print(table(args.seeds, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
