"""The full detection evaluation against one un-bootstrapped FROC, in one run.

    .venv/bin/python bench/evaluation.py [--scans 100] [--marks 100]
                                         [--resamples 1000] [--seed 7] [--repeat 3]

Data (seeded, built as Truth objects directly, no DICOM): --scans CT scans of
300 slices on a 1 x 0.7 x 0.7 mm grid spread over 5 sites, 4 manufacturers and
3 slice-thickness bands; 0-3 reference nodules per scan (3-30 mm, six finding
types, outlined as ellipses on every slice they span, about one in ten
excluded); a submission of --marks marks per scan: one near most nodules,
probable, the rest anywhere in the volume, less probable.

Baseline: qc.evaluation.detection.evaluate_detection under the LUNA16 rule
alone, no bootstrap, no strata: matching, FROC, CPM, MONAI score, Metrics
Reloaded area, operating-point and patient-level figures, once.

Full evaluation: the same call as the kit makes: the version's declared rule
(centre in contour) and the rule table (centre within radius, centre in contour,
IoU >= 0.1 with the mark as a sphere), every figure with a --resamples scan
bootstrap, the FROC band, every stratum (site, manufacturer, slice thickness,
finding type, size, agreement), the lesion listing.

Goal: the full evaluation within 50x of the single FROC. Machines are shared
and noisy: quote the ratio, measured in the same run (medians of --repeat).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from qc.evaluation.detection import evaluate_detection  # noqa: E402
from qc.evaluation.truth import Lesion, Scan, Truth, size_band  # noqa: E402
from qc.matching import Grid  # noqa: E402

SLICES, ROWS, COLS = 300, 512, 512
SPACING = (1.0, 0.7, 0.7)  # slice, row, column (mm)
TYPES = ("solid", "part_solid", "ground_glass", "calcified", "perifissural", "endobronchial")


@dataclass(frozen=True)
class Mark:
    series_uid: str
    x: float
    y: float
    z: float
    probability: float
    line: int


def synthetic(scans: int, marks: int, seed: int) -> tuple[Truth, list[Mark]]:
    rng = np.random.default_rng(seed)
    grid = Grid.regular(SLICES, spacing=SPACING, rows=ROWS, columns=COLS, slice_thickness=1.0)
    extent = np.array([COLS * SPACING[2], ROWS * SPACING[1], SLICES * SPACING[0]])
    scan_list, lesions, out = [], [], []
    line = 2
    for i in range(scans):
        uid = f"1.2.826.0.1.{seed}.{i}"
        scan_list.append(
            Scan(
                uid,
                f"case{i}",
                f"patient{i}",
                grid,
                "",
                {
                    "site": f"site-{i % 5}",
                    "manufacturer": ("GE", "Siemens", "Philips", "Canon")[i % 4],
                    "slice_thickness": ("<=1 mm", "1-2.5 mm", "2.5-5 mm")[i % 3],
                },
            )
        )
        near = 0
        for k in range(int(rng.integers(0, 4))):
            d = float(rng.uniform(3, 30))
            c = rng.uniform(extent * 0.15, extent * 0.85)
            s0, s1 = int((c[2] - d / 2) / SPACING[0]), int((c[2] + d / 2) / SPACING[0])
            col, row = c[0] / SPACING[2], c[1] / SPACING[1]
            shapes = []
            for s in range(max(s0, 0), min(s1, SLICES - 1) + 1):
                half = max(np.sqrt(max((d / 2) ** 2 - (s * SPACING[0] - c[2]) ** 2, 0.0)), 0.5)
                a, b = half / SPACING[2], half / SPACING[1]
                shapes.append(
                    {"slice_index": s, "points": [[col - a, row - b], [col + a, row + b]]}
                )
            readers = int(rng.integers(1, 5))
            kind = TYPES[int(rng.integers(0, len(TYPES)))]
            lesions.append(
                Lesion(
                    f"R{i}.{k}",
                    uid,
                    f"case{i}",
                    kind,
                    (float(c[0]), float(c[1]), float(c[2])),
                    d,
                    {"kind": "ellipse", "shapes": shapes, "centre_mm": list(map(float, c))},
                    excluded=bool(rng.random() < 0.1),
                    readers=readers,
                    strata={
                        "finding_type": kind,
                        "size": size_band(d),
                        "agreement": "all readers" if readers == 4 else "fewer",
                    },
                )
            )
            if rng.random() < 0.8 and near < marks:
                p = c + rng.normal(0, d / 4, 3)
                out.append(Mark(uid, *map(float, p), float(rng.beta(5, 2)), line))
                line += 1
                near += 1
        for p in rng.uniform([0, 0, 0], extent, size=(marks - near, 3)):
            out.append(Mark(uid, *map(float, p), float(rng.beta(1, 6)), line))
            line += 1
    truth = Truth("bench", "1.0.0", "test", "centre_in_contour", 0.0, 4,
                  tuple(scan_list), tuple(lesions))  # fmt: skip
    return truth, out


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scans", type=int, default=100)
    ap.add_argument("--marks", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    truth, marks = synthetic(args.scans, args.marks, args.seed)
    scored = sum(1 for les in truth.lesions if not les.excluded)
    print(
        f"data: {args.scans} scans, {len(truth.lesions)} reference lesions ({scored} scored), "
        f"{len(marks)} marks ({args.marks} per scan); {args.resamples} bootstrap resamples"
    )

    def single():
        return evaluate_detection(
            truth, marks, rule="centre_within_radius", bootstrap=0, strata=False, all_rules=False
        )

    def full():
        return evaluate_detection(truth, marks, bootstrap=args.resamples, seed=args.seed)

    t_one, one = timed(single, args.repeat)
    print(f"single FROC (LUNA16 rule, no bootstrap, no strata): {t_one * 1000:.1f} ms")
    print(f"  CPM {one['figures']['cpm']['value']:.4f}")
    t_full, result = timed(full, args.repeat)
    levels = sum(len(v) for v in result["strata"].values())
    print(
        f"full evaluation ({len(result['rules'])} rules, {levels} stratum levels, "
        f"{args.resamples} resamples): {t_full:.2f} s  (ratio {t_full / t_one:.1f}x)"
    )
    for e in result["rules"]:
        f = e["figures"]
        mark = " (declared)" if e["declared"] else ""
        print(
            f"  {e['rule']:<22}{mark:<11} CPM {f['cpm']['value']:.4f} "
            f"[{f['cpm']['ci'][0]:.4f}, {f['cpm']['ci'][1]:.4f}]  "
            f"sensitivity {f['sensitivity']['value']:.3f}"
        )
    same = abs(result["rules"][1]["figures"]["cpm"]["value"] - one["figures"]["cpm"]["value"])
    print(f"LUNA16-rule CPM the same in both runs: {same == 0.0}")
    goal = "met" if t_full <= 50 * t_one else "not met"
    print(f"goal (full evaluation within 50x of the single FROC): {goal}")


if __name__ == "__main__":
    main()
