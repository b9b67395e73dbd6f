"""The full agreement report against Krippendorff's alpha alone, in one run.

    .venv/bin/python bench/agreement.py [--cases 1000] [--readers 4]
                                        [--findings 7000] [--replicates 1000]
                                        [--seed 7] [--repeat 3] [--fundus]

Data: qc.agreement.synthetic (seeded): --cases cases x --readers readers with
about --findings marks in all (ellipses over the slices they span on a
1 x 0.7 x 0.7 mm grid), attributes with reader noise, case-level answers and a
reference standard.

Baseline: the krippendorff package's alpha (krippendorff.alpha) on the same
ratings the report rates: one call per measured field (finding attributes on
the matched clusters, case-level answers), at its level of measurement. It
gets the ratings matrices ready-made; the report starts from the marks.

Full report (qc.agreement.report.build_report): clustering under the match
rule, detection against the reference (optimal assignment) and between
readers, the LIDC table, every categorical coefficient (percent agreement,
Fleiss, Krippendorff, Gwet, pairwise Cohen kappas), ICC/Bland-Altman/CV,
Dice/IoU/HD95/ASSD/NSD of every reader pair on every lesion, STAPLE, strata,
weeks, each with a --replicates case-bootstrap CI; also without the shape
measures (rasterising and surface distances), which dominate.

--fundus: colour fundus photographs instead (qc.agreement.synthetic.fundus, a
1024 px pixel grid per case): DR grade 0-4 with ungradable, oedema, referable
DR and vertical CDR per read, microaneurysm points and haemorrhage/exudate
boxes matched per type, disc and cup ellipses (Dice/IoU per reader pair).

Goal: the full report within 10x of alpha alone. Machines are shared and
noisy: quote the ratio, measured in the same run (medians of --repeat).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import krippendorff  # noqa: E402
import numpy as np  # noqa: E402

from qc.agreement import synthetic  # noqa: E402
from qc.agreement.report import Settings, _Builder, build_report  # noqa: E402


def ratings_for(fields, readers, cases, settings=None):
    """The report's own ratings matrices (units x readers), built once."""
    settings = settings or Settings()
    builder = _Builder(
        fields, readers, cases, settings.__class__(**{**settings.__dict__, "replicates": 0})
    )
    builder.cluster_all()
    return [(f, builder.ratings(f)) for f in fields]


def alpha_alone(matrices) -> dict[str, float]:
    out = {}
    for f, r in matrices:
        pairable = r[np.isfinite(r).sum(axis=1) >= 2]
        if len(pairable):
            out[f.name] = krippendorff.alpha(
                reliability_data=pairable.T, level_of_measurement=f.level
            )
    return out


def timed(fn, repeat):
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--findings", type=int, default=7000)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--fundus",
        action="store_true",
        help="colour fundus photographs (synthetic.fundus): DR grade with ungradable, "
        "referable DR, CDR, per-type lesion matching in 2-D, disc/cup Dice",
    )
    args = ap.parse_args()

    if args.fundus:
        fields, readers, cases = synthetic.fundus(
            cases=args.cases, readers=args.readers, seed=args.seed
        )
        settings = synthetic.fundus_settings(replicates=args.replicates)
    else:
        fields, readers, cases = synthetic.generate(
            cases=args.cases, readers=args.readers, findings=args.findings, seed=args.seed
        )
        settings = Settings(replicates=args.replicates)
    marks = sum(len(m) for c in cases for m in c.reads.values())
    matrices = ratings_for(fields, readers, cases, settings)
    clusters = next((len(r) for f, r in matrices if f.finding_type), 0)
    print(
        f"data: {args.cases} cases x {args.readers} readers, {marks} findings, "
        f"{clusters} lesions (clusters); {args.replicates} bootstrap replicates"
    )
    import scipy.optimize  # noqa: F401  (imports outside the timings)

    t_alpha, alphas = timed(lambda: alpha_alone(matrices), args.repeat)
    print(f"krippendorff.alpha alone ({len(alphas)} fields): {t_alpha * 1000:.1f} ms")
    for f, r in matrices:
        t_one, _ = timed(lambda f=f, r=r: alpha_alone([(f, r)]), args.repeat)
        print(f"  {f.name:<28} {f.level:<9} {len(r):>5} units  {t_one * 1000:8.1f} ms")
    t_full, report = timed(lambda: build_report(fields, readers, cases, settings), args.repeat)
    ours = {
        b["name"]: b["krippendorff_alpha"]["value"]
        for b in report["attributes"] + report["case_labels"]
    }
    same = all(abs(ours[name] - a) < 1e-5 for name, a in alphas.items())
    print(f"full report: {t_full:.2f} s  (ratio {t_full / t_alpha:.1f}x)")
    noshape = settings.__class__(**{**settings.__dict__, "shapes": False})
    t_ns, _ = timed(lambda: build_report(fields, readers, cases, noshape), args.repeat)
    print(f"full report without shape measures: {t_ns:.2f} s  (ratio {t_ns / t_alpha:.2f}x)")
    print(f"alpha values agree with the package (1e-5, rounded in the report): {same}")
    print(
        f"detection agreement {report['detection']['agreement']}; "
        f"shape pairs {report['shapes']['pairs']}"
    )
    for o in report.get("outlines", []):
        print(f"outline {o['finding_type']}: {o['pairs']} pairs, Dice {o['dice']['value']}")
    goal = "met" if t_full <= 10 * t_alpha else "not met"
    print(f"goal (full report within 10x of alpha alone): {goal}")


if __name__ == "__main__":
    main()
