"""How fast the synthetic CT generator is, against pydicom's own I/O on the same files.

    .venv/bin/python bench/fixtures_ct.py [--slices 300] [--repeat 3]

Baseline: pydicom reading and re-writing the files the generator wrote (the
practical floor for anything that produces DICOM files with pydicom). Prints
medians and the ratio generator / baseline; compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import fixtures  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    gen, base = [], []
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as out, tempfile.TemporaryDirectory() as copy:
            t0 = time.perf_counter()
            fixtures.generate_ct(out, slices=args.slices, seed=i)
            gen.append(time.perf_counter() - t0)
            files = sorted(Path(out).glob("*.dcm"))
            t0 = time.perf_counter()
            for f in files:
                pydicom.dcmread(f).save_as(Path(copy) / f.name)
            base.append(time.perf_counter() - t0)
    g, b = statistics.median(gen), statistics.median(base)
    print(f"slices={args.slices} repeat={args.repeat}")
    print(f"generate (median) {g:.2f} s  = {args.slices / g:.0f} slices/s")
    print(f"pydicom read+write same files (median) {b:.2f} s = {args.slices / b:.0f} files/s")
    print(f"ratio generate / pydicom-io = {g / b:.1f}x")


if __name__ == "__main__":
    main()
