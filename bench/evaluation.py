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

DR grading (--dr IMAGES, e.g. 6327, the NIFDC fundus set's size): IMAGES
fundus images of IMAGES/2 patients (both eyes), reference grades 0-4 with some
ungradable and some DMO, a product giving a grade and a probability for all
but 1% of them. Baseline: the quadratic-kappa bootstrap as a loop of
--resamples scikit-learn cohen_kappa_score calls on the same patient
resamples; measured: qc.evaluation.dr.kappa_bootstrap (one matrix product) and
the whole DR evaluation (every figure, intervals, strata). The two intervals
must be equal (same resamples, same formula).
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


def dr_bench(images: int, resamples: int, seed: int, repeat: int) -> None:
    from sklearn.metrics import cohen_kappa_score

    from qc.evaluation import bootstrap as bs
    from qc.evaluation import dr
    from qc.evaluation.submission import ImageGrade

    rng = np.random.default_rng(seed)
    grades = rng.choice(5, size=images, p=[0.55, 0.2, 0.13, 0.07, 0.05])
    dmo = np.where(rng.random(images) < 0.06, "present", "absent")
    ungradable = rng.random(images) < 0.04
    imgs, rows = [], []
    for i in range(images):
        g = "ungradable" if ungradable[i] else int(grades[i])
        lat = "OD" if i % 2 == 0 else "OS"
        imgs.append(
            dr.DRImage(
                f"F{i:05d}",
                f"2.25.{i}",
                f"P{i // 2:05d}",
                laterality=lat,
                grade=g,
                dmo=str(dmo[i]),
                referable=None if ungradable[i] else dr.referable(g, dmo[i]),
                strata={"site": f"S{i % 11}", "manufacturer": f"M{i % 4}", "laterality": lat},
            )
        )
        if rng.random() < 0.01:
            continue  # skipped by the product
        pg = int(np.clip(grades[i] + rng.integers(-1, 2) * (rng.random() < 0.3), 0, 4))
        p = float(np.clip(grades[i] / 4 + rng.normal(0, 0.2), 0, 1))
        rows.append(ImageGrade(f"F{i:05d}", pg, p, None, i + 2))
    truth = dr.DRTruth("bench", "1.0.0", "test", tuple(imgs))
    by = {r.case_id: r for r in rows}
    pairs = [
        (im.grade, by[im.case_id].grade, im.patient_id)
        for im in imgs
        if isinstance(im.grade, int) and im.case_id in by
    ]
    ref = np.array([a for a, _, _ in pairs])
    pred = np.array([b for _, b, _ in pairs])
    pat = np.array([c for _, _, c in pairs], dtype=object)
    print(
        f"DR data: {images} images, {len(set(pat))} patients, {len(rows)} rows, "
        f"{len(pairs)} graded pairs; {resamples} resamples"
    )

    def loop():
        ids, inverse = np.unique(pat, return_inverse=True)
        members = [np.flatnonzero(inverse == k) for k in range(len(ids))]
        idx = bs.resample_indices(len(ids), resamples, seed)
        values = []
        for draw in idx:
            take = np.concatenate([members[k] for k in draw])
            values.append(
                cohen_kappa_score(
                    ref[take], pred[take], labels=list(dr.GRADES), weights="quadratic"
                )
            )
        lo, hi = bs.interval(np.asarray(values))
        return [float(lo), float(hi)]

    def vectorised():
        return dr.kappa_bootstrap(ref, pred, pat, resamples=resamples, seed=seed)

    def full():
        return dr.evaluate_dr(
            truth,
            rows,
            operating_threshold=0.5,
            bootstrap=resamples,
            seed=seed,
            columns=("grade", "probability"),
        )

    t_loop, ci_loop = timed(loop, repeat)
    t_vec, ci_vec = timed(vectorised, repeat)
    t_full, result = timed(full, repeat)
    print(f"kappa bootstrap, loop of cohen_kappa_score: {t_loop:.2f} s  CI {ci_loop}")
    print(
        f"kappa bootstrap, vectorised:                {t_vec:.3f} s  CI {ci_vec}  "
        f"({t_loop / t_vec:.0f}x faster)"
    )
    print(f"intervals equal: {np.allclose(ci_loop, ci_vec, atol=1e-12)}")
    f = result["figures"]
    print(
        f"whole DR evaluation: {t_full:.2f} s  AUC {f['auc']['value']:.4f} "
        f"patient AUC {f['patient_auc']['value']:.4f} kappa "
        f"{f['quadratic_kappa']['value']:.4f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scans", type=int, default=100)
    ap.add_argument("--marks", type=int, default=100)
    ap.add_argument("--resamples", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dr", type=int, default=0, help="DR grading bench on this many images")
    args = ap.parse_args()
    if args.dr:
        dr_bench(args.dr, args.resamples, args.seed, args.repeat)
        return

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
