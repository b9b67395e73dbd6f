"""How long QC of a series takes, against pydicom simply reading the same files.

    .venv/bin/python bench/qc_vs_ingest.py [--slices 300] [--matrix 512] [--repeat 3]

On a synthetic chest CT written by ``fixtures.generate_ct`` (512x512, 16-bit):

  (a) baseline: pydicom ``dcmread`` of every file plus ``pixel_array`` (the floor for
      anything that looks at the pixels of the series in Python);
  (b) ours: ``qc.load_series`` + ``qc.run_series`` with the lung-CT default profile
      (every header and CT pixel rule, burned-in text on every slice), from the files.

Prints medians over --repeat runs and the ratio QC / pydicom read (machines are
shared and noisy: quote the ratio, not seconds).
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
import qc  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    read, ours = [], []
    per_rule: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as out:
        fixtures.generate_ct(out, slices=args.slices, matrix=args.matrix, seed=0)
        files = sorted(Path(out).glob("*.dcm"))
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            for f in files:
                pydicom.dcmread(f).pixel_array  # noqa: B018
            read.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            (series,) = qc.load_series([out])
            prof = qc.Profile.default_for(series.modality)
            series.images()  # pixel load counted in the total, shown separately below
            t_load = time.perf_counter() - t0
            per_rule.setdefault("(load headers + pixels)", []).append(t_load)
            for key, rule in qc.RULES.items():
                if rule.applies(series.modality) and prof.wants(key):
                    t1 = time.perf_counter()
                    rule.fn(series, prof)
                    per_rule.setdefault(key, []).append(time.perf_counter() - t1)
            ours.append(time.perf_counter() - t0)
            report = qc.run_series(series, prof)  # same rules, cached pixels: sanity only
    r, o = statistics.median(read), statistics.median(ours)
    print(f"slices={args.slices} matrix={args.matrix} repeat={args.repeat}")
    print(f"pydicom read + pixel_array (median) {r:.2f} s = {len(files) / r:.0f} files/s")
    print(f"qc load + all rules      (median) {o:.2f} s = {len(files) / o:.0f} files/s")
    print(f"ratio qc / pydicom-read = {o / r:.2f}x   (overall status: {report.status})")
    print("per step (median s):")
    for key, ts in per_rule.items():
        print(f"  {key:<26} {statistics.median(ts):.3f}")


if __name__ == "__main__":
    main()
