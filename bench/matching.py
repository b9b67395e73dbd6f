"""How long matching and settling take for 1000 cases x 4 readers x 7 findings.

    .venv/bin/python bench/matching.py [--cases 1000] [--readers 4] [--findings 7]
                                       [--django-cases 200] [--seed 1]

(a) pure: for each match rule, qc.matching.cluster + qc.consensus.evaluate +
    consensus geometry (majority vote) of every cluster, over every case; the
    baseline is a naive all-pairs centre-distance pass over the same marks (the
    least any matcher must do). Ellipses over 3 slices on a 200 x 512 x 512 grid.
(b) Django: settle_case (the "adjudication.settle" job body: rows to marks,
    matching, consensus, clusters, reference findings, audit, transitions,
    arbitration tasks) on --django-cases cases in a fresh test database:
    PostgreSQL when DATABASE_URL is set, else SQLite. Baseline: loading the same
    cases' findings and labels from the database.
Machines are shared and noisy: quote the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from qc import consensus, matching  # noqa: E402

SPACING = (1.0, 0.7, 0.7)
THRESHOLDS = {
    "centre_distance": 5.0,
    "centre_in_contour": 0.0,
    "distance_or_inside": 5.0,
    "overlap_dice": 0.3,
    "overlap_iou": 0.2,
}


def synth_case(rng: random.Random, grid, readers: int, findings: int):
    """`findings` lesions; each reader marks each with p=0.85 (jittered ellipse over
    3 slices) and adds a false positive with p=0.3."""
    lesions = [
        (rng.uniform(40, 470), rng.uniform(40, 470), rng.randint(10, 185), rng.uniform(4, 12))
        for _ in range(findings)
    ]
    marks = []
    for r in range(readers):
        todo = [lesion for lesion in lesions if rng.random() < 0.85]
        if rng.random() < 0.3:
            todo.append((rng.uniform(40, 470), rng.uniform(40, 470), rng.randint(10, 185), 5.0))
        for k, (c, row, s, radius) in enumerate(todo):
            c += rng.gauss(0, 1.5)
            row += rng.gauss(0, 1.5)
            rad = radius * rng.uniform(0.8, 1.2)
            shapes = tuple(
                (s + ds, ((c - rad, row - rad), (c + rad, row + rad))) for ds in (-1, 0, 1)
            )
            marks.append(
                matching.Mark(
                    id=f"{r}-{k}",
                    reader=f"R{r}",
                    finding_type="nodule",
                    centre_mm=grid.to_patient(s, c, row),
                    kind="ellipse",
                    shapes=shapes,
                    attributes={
                        "nodule_type": rng.choice(["solid", "solid", "part_solid"]),
                        "malignancy": rng.randint(2, 4),
                    },
                )
            )
    return marks


def baseline_pairs(cases) -> float:
    t = time.perf_counter()
    for marks in cases:
        near = 0
        for i, a in enumerate(marks):
            for b in marks[i + 1 :]:
                if a.reader != b.reader and math.dist(a.centre_mm, b.centre_mm) <= 5.0:
                    near += 1
    return time.perf_counter() - t


def pure(args) -> None:
    rng = random.Random(args.seed)
    grid = matching.Grid.regular(200, spacing=SPACING, rows=512, columns=512)
    cases = [synth_case(rng, grid, args.readers, args.findings) for _ in range(args.cases)]
    n_marks = sum(len(c) for c in cases)
    rule = consensus.ConsensusRule(
        readers=args.readers,
        accept_min_readers=args.readers,
        drop_below_readers=2,
        size_tolerance_mm=3.0,
        attribute_kinds={"nodule": {"nodule_type": "enum", "malignancy": "ordinal"}},
    )
    base = baseline_pairs(cases)
    print(f"(a) pure: {args.cases} cases, {n_marks} marks ({n_marks / args.cases:.1f}/case)")
    print(f"    baseline all-pairs distance pass: {base:.3f} s")
    for name, threshold in THRESHOLDS.items():
        t = time.perf_counter()
        clusters = verdicts = 0
        for marks in cases:
            found = matching.cluster(marks, name, threshold, grid)
            clusters += len(found)
            verdicts += sum(v.verdict == "accept" for v in consensus.evaluate(found, rule, grid))
        t_match = time.perf_counter() - t
        t = time.perf_counter()
        for marks in cases[: max(1, args.cases // 10)]:
            for c in matching.cluster(marks, name, threshold, grid):
                consensus.consensus_geometry(c.marks, grid, "majority")
        t_geo = (time.perf_counter() - t) * (args.cases / max(1, args.cases // 10))
        print(
            f"    {name:<19} cluster+verdicts {t_match:7.3f} s ({t_match / base:6.1f}x baseline)"
            f"  + majority geometry ~{t_geo:6.3f} s (est. from 10%)"
            f"  clusters {clusters}, auto-accepted {verdicts}"
        )


def django_part(args) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_server.settings")
    if not os.environ.get("REFSET_KEY_ENCRYPTION_KEY"):
        from cryptography.fernet import Fernet

        os.environ["REFSET_KEY_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    old = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        _django_run(args, connection.vendor)
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)


def _django_run(args, vendor) -> None:
    from annotation_server.accounts.models import Role
    from annotation_server.adjudication.services import settle_case
    from annotation_server.imaging.models import Instance
    from annotation_server.projects.services import grant_role
    from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
    from tests import factories

    rng = random.Random(args.seed)
    grid = matching.Grid.regular(200, spacing=SPACING, rows=512, columns=512)
    project = factories.ProjectFactory(slug="bench")
    p = project.protocol
    p.readers_per_case, p.auto_accept_min_readers, p.drop_below_readers = (
        args.readers,
        args.readers,
        2,
    )
    p.save()
    readers = [factories.UserFactory(username=f"bench_r{i}") for i in range(args.readers)]
    for u in readers:
        grant_role(project, u, Role.READER)
    for i in range(3):
        grant_role(project, factories.UserFactory(username=f"bench_arb{i}"), Role.ARBITRATOR)
    cases = []
    for n in range(args.django_cases):
        case = factories.CaseFactory(project=project, code=f"B{n:05d}")
        series = case.series
        series.pixel_spacing_mm, series.orientation = [0.7, 0.7], [1, 0, 0, 0, 1, 0]
        series.save()
        Instance.objects.bulk_create(
            Instance(
                series=series,
                sop_instance_uid=f"2.25.{n}.{i}",
                sop_class_uid="x",
                slice_index=i,
                position=[0.0, 0.0, float(i)],
                rows=512,
                columns=512,
                sha256=f"{n:032d}{i:032d}",
                file="x",
            )
            for i in range(200)
        )
        tasks = {
            f"R{r}": ReadingTask.objects.create(case=case, reader=u, state="submitted")
            for r, u in enumerate(readers)
        }
        rows = []
        for m in synth_case(rng, grid, args.readers, args.findings):
            rows.append(
                Finding(
                    task=tasks[m.reader],
                    finding_type="nodule",
                    geometry={
                        "kind": "ellipse",
                        "centre_mm": list(m.centre_mm),
                        "shapes": [
                            {"slice_index": s, "points": [list(p) for p in pts]}
                            for s, pts in m.shapes
                        ],
                    },
                    centre_x_mm=m.centre_mm[0],
                    centre_y_mm=m.centre_mm[1],
                    centre_z_mm=m.centre_mm[2],
                    attributes={**m.attributes, "long_axis_mm": 6.0},
                )
            )
        Finding.objects.bulk_create(rows)
        for t in tasks.values():
            CaseLabel.objects.create(task=t, values={"nodules_present": True, "image_quality": 3})
        cases.append(case.pk)
    t = time.perf_counter()
    for pk in cases:
        list(Finding.objects.filter(task__case_id=pk).values())
        list(CaseLabel.objects.filter(task__case_id=pk).values())
        list(Instance.objects.filter(series__cases__pk=pk).values("position"))
    base = time.perf_counter() - t
    t = time.perf_counter()
    for pk in cases:
        settle_case(pk)
    settle = time.perf_counter() - t
    t = time.perf_counter()
    for pk in cases:
        settle_case(pk)  # idempotent: returns the existing settlement
    again = time.perf_counter() - t
    from annotation_server.adjudication.models import ArbitrationTask, Cluster

    print(f"(b) Django on {vendor}: {len(cases)} cases, centre_distance 5 mm")
    print(f"    baseline: load findings, labels, grid rows: {base:.3f} s")
    print(
        f"    settle_case: {settle:.3f} s ({settle / len(cases) * 1000:.1f} ms/case, "
        f"{settle / base:.1f}x baseline); clusters {Cluster.objects.count()}, "
        f"arbitration tasks {ArbitrationTask.objects.count()}"
    )
    print(f"    settle again (idempotent no-op): {again:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--findings", type=int, default=7)
    parser.add_argument("--django-cases", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    pure(args)
    if args.django_cases:
        django_part(args)


if __name__ == "__main__":
    main()
