"""RefSet on several hosts (network namespaces) vs on one host, in one run.

    .venv/bin/python bench/multihost.py [--studies 3] [--slices 100] [--matrix 256]
                                        [--no-ocr] [--infer-cases 2] [--json FILE]

Needs root (ip netns). The topology is the multi-host test's
(tests/multihost/cluster.py): d runs PostgreSQL, Redis and SeaweedFS (S3); w
runs gunicorn; k1 and k2 run Celery workers (solo pool: one worker process
each), every host with its own folder only and the files in the bucket. The
baseline runs the same processes in ONE namespace (d: databases, S3, gunicorn and
one worker on every queue). Both layouts do the same work, driven over HTTP
through the web node with session logins:

1. batch 1: --studies synthetic CTs (fixtures.generate_ct, --slices x --matrix²,
   distinct seeds) uploaded at once, imported by ONE worker process (multi:
   k1 on ingest,qc; k2 on export,default,inference);
2. batch 2: as many other studies, imported by TWO worker processes on two
   hosts (multi: k2 restarted on ingest too) or still by the one (single);
3. QC (follow-up jobs), assignment, two blind reads per case, the settle
   jobs, a frozen version of every case exported (NIFDC package, zip in S3);
4. the built-in lung-nodule model (`manage.py prelabel`, inference queue) over
   --infer-cases cases, on CPU.

Figures: ingest files/s per worker process (files / the import jobs' own
started->finished seconds), ingest files/s in aggregate (files / the batch's
first start to last finish), the scaling ratio batch 2 / batch 1, export cases/
min per worker (cases / the export job's seconds), inference seconds per CT (the
prelabel job's seconds / cases), and multi / single ratios. Every host is on
this one machine: the namespaces separate the network and the disks, not the
CPUs, so two worker hosts share the same cores as everything else (see
`nproc`); the scaling ratio is bounded by that, not by RefSet. Machines are
shared and noisy: quote the ratios, from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_server.settings")

import fixtures  # noqa: E402
from tests.multihost.cluster import PY, Cluster, stop_group  # noqa: E402
from tests.multihost.flow import (  # noqa: E402
    freeze_and_export,
    jobs,
    my_tasks,
    read_case,
    upload,
    wait_until,
)
from tests.multihost.web import Browser  # noqa: E402
from tests.netns import netns_usable, why_not_usable  # noqa: E402

ALL_QUEUES = ["ingest", "qc", "export", "default", "inference"]


def seconds(job: dict) -> float:
    return (job["finished_at"] - job["started_at"]).total_seconds()


def ingest_batch(cluster, db, manager, folders, procs) -> dict:
    """Upload every study of `folders` (one import each), wait for the imports."""
    before = {j["id"] for j in jobs(db)}
    ids = [upload(manager, "lung", folder) for folder in folders]
    wait_until(
        lambda: all(j["finished_at"] for j in jobs(db) if j["id"] in ids),
        "the imports",
        1800,
        *procs,
    )
    rows = [j for j in jobs(db) if j["id"] in ids]
    failed = [j for j in rows if j["state"] != "succeeded"]
    assert not failed, failed
    files = sum(j["result"]["summary"]["imported"] for j in rows)
    busy = sum(seconds(j) for j in rows)
    span = (
        max(j["finished_at"] for j in rows) - min(j["started_at"] for j in rows)
    ).total_seconds()
    hosts = sorted({j["worker"].split(":", 1)[0] for j in rows})
    assert not before & set(ids)
    return {
        "files": files,
        "per_process_files_s": files / busy,
        "aggregate_files_s": files / span,
        "hosts": hosts,
    }


def warm_up(db, manager, folders, procs) -> None:
    ids = [upload(manager, "warmup", folder) for folder in folders]
    wait_until(lambda: all(j["finished_at"] for j in jobs(db) if j["id"] in ids), "warm-up", 600)
    wait_idle(db, procs)


def wait_idle(db, procs, timeout: float = 1800) -> None:
    wait_until(lambda: all(j["finished_at"] for j in jobs(db)), "the queued jobs", timeout, *procs)


def run_layout(layout: str, args, studies: list[Path], warmup: list[Path], tmp: Path) -> dict:
    single = layout == "single"
    out: dict = {"layout": layout}
    with ExitStack() as stack:
        cluster = Cluster(tmp, stack, workers=() if single else ("k1", "k2"), web=not single)
        web_host = "d" if single else "w"
        t0 = time.monotonic()
        cluster.start_data()
        cluster.migrate()
        seeded = cluster.run(web_host, [PY, "-m", "tests.multihost.seed"])
        password = json.loads(seeded.stdout.splitlines()[-1])["password"]
        cluster.start_web(web_host)
        out["setup_s"] = time.monotonic() - t0
        db = stack.enter_context(cluster.db())
        extra = {} if args.ocr else {"REFSET_BURNED_IN_OCR": "0"}
        if single:
            procs = [cluster.start_worker("d", ALL_QUEUES, **extra)]
        else:
            procs = [
                cluster.start_worker("k1", ["ingest", "qc"], **extra),
                cluster.start_worker("k2", ["export", "default", "inference"], **extra),
            ]
        manager = Browser(cluster.web_url).login("manager", password)
        min_slices = {"profile": {"min_slices": min(args.slices, 100)}}
        manager.json("put", "/api/v1/projects/lung/qc-profile/", 200, json=min_slices)

        # A warm-up import (not counted): each worker's first job loads what it
        # keeps loaded (Tesseract, codecs, the storage client).
        warm_up(db, manager, warmup[:1], procs)
        half = len(studies) // 2
        out["batch1"] = ingest_batch(cluster, db, manager, studies[:half], procs)
        wait_idle(db, procs)
        if not single:  # a second ingest host: k2 takes the ingest queue too
            stop_group(procs[1])
            procs[1] = cluster.start_worker(
                "k2", ["ingest", "export", "default", "inference"], **extra
            )
        warm_up(db, manager, warmup[1:], procs)  # one each, when two workers ingest
        out["batch2"] = ingest_batch(cluster, db, manager, studies[half:], procs)
        wait_idle(db, procs)

        cases = manager.json("get", "/api/v1/cases/?project=lung&limit=500", 200)["results"]
        assert len(cases) == len(studies), cases
        not_passed = [c["code"] for c in cases if c["qc_status"] not in ("pass", "warn")]
        assert not not_passed, f"QC did not pass: {not_passed}"
        assign = manager.json("post", "/api/v1/projects/lung/assignments/run/", 202)
        manager.wait_job(assign["id"], timeout=600)
        for name in ("reader_a", "reader_b"):
            reader = Browser(cluster.web_url).login(name, password)
            for task in my_tasks(reader):
                read_case(reader, task["id"])
        wait_idle(db, procs)
        export_id = freeze_and_export(manager, "lung", "1.0.0")
        export = manager.wait_job(export_id, timeout=1800)
        [row] = [j for j in jobs(db) if j["id"] == export_id]
        out["export"] = {
            "cases": len(cases),
            "seconds": seconds(row),
            "cases_per_min": len(cases) / seconds(row) * 60,
            "host": row["worker"].split(":", 1)[0],
            "zip_key": export["result"].get("zip_key"),
        }

        # What the bucket holds per imported file (instances, series streams,
        # thumbnails, the export's zip...), by top-level prefix.
        sizes: dict[str, int] = {}
        pages = cluster.s3.client().get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=cluster.s3.bucket):
            for item in page.get("Contents", []):
                top = item["Key"].split("/", 1)[0]
                sizes[top] = sizes.get(top, 0) + item["Size"]
        [(files,)] = db.execute("SELECT count(*) FROM imaging_instance").fetchall()
        out["bucket_mb_per_file"] = {k: v / 2**20 / files for k, v in sorted(sizes.items())}

        if args.infer_cases:
            listing = cluster.home(web_host) / "var" / "infer-cases.txt"
            codes = sorted(c["code"] for c in cases)[: args.infer_cases]
            listing.write_text("\n".join(codes) + "\n")
            argv = [PY, "manage.py", "prelabel", "--project", "lung", "--model", "lung-nodule"]
            cluster.run(web_host, [*argv, "--cases", str(listing)])
            wait_until(
                lambda: any(j["kind"] == "reading.prelabel" and j["finished_at"] for j in jobs(db)),
                "the prelabel job",
                1800,
                *procs,
            )
            [row] = [j for j in jobs(db) if j["kind"] == "reading.prelabel"]
            assert row["state"] == "succeeded", row["log"][-2000:]
            out["inference"] = {
                "cases": len(codes),
                "seconds_per_ct": seconds(row) / len(codes),
                "host": row["worker"].split(":", 1)[0],
            }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=3, help="CT studies per ingest batch")
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--matrix", type=int, default=256)
    parser.add_argument("--no-ocr", dest="ocr", action="store_false", help="burned-in OCR off")
    parser.add_argument("--infer-cases", type=int, default=2, help="0: no inference")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    if not netns_usable():
        print(f"cannot run: {why_not_usable()}")
        return 2
    import django

    django.setup()  # the test helpers import RefSet modules; no database is used here
    with tempfile.TemporaryDirectory(prefix="refset-bench-mh-") as tmp_name:
        tmp = Path(tmp_name)
        studies = []
        for i in range(2 * args.studies):
            folder = tmp / "studies" / f"ct{i:02d}"
            fixtures.generate_ct(folder, slices=args.slices, seed=300 + i, matrix=args.matrix)
            studies.append(folder)
        warmup = [tmp / "studies" / f"warmup{i}" for i in range(3)]
        for i, folder in enumerate(warmup):
            fixtures.generate_ct(folder, slices=8, seed=290 + i, matrix=args.matrix)
        mb = sum(p.stat().st_size for s in studies for p in s.glob("*.dcm")) / 2**20
        print(
            f"{len(studies)} CT studies x {args.slices} slices {args.matrix}x{args.matrix} "
            f"({mb:.0f} MB), OCR {'on' if args.ocr else 'off'}, {os.cpu_count()} CPUs",
            flush=True,
        )
        results = {}
        for layout in ("single", "multi"):
            results[layout] = run_layout(layout, args, studies, warmup, tmp / layout)
            print(f"{layout}: {json.dumps(results[layout], default=str)}", flush=True)

    s, m = results["single"], results["multi"]
    print()
    print(f"{'figure':46} {'single host':>12} {'multi-host':>12} {'multi/single':>12}")

    def row(label: str, a: float, b: float) -> None:
        print(f"{label:46} {a:12.2f} {b:12.2f} {b / a:12.2f}")

    row(
        "ingest files/s per worker process (batch 1)",
        *(r["batch1"]["per_process_files_s"] for r in (s, m)),
    )
    row(
        "ingest files/s aggregate, 1 ingest process",
        *(r["batch1"]["aggregate_files_s"] for r in (s, m)),
    )
    row("ingest files/s aggregate, batch 2", *(r["batch2"]["aggregate_files_s"] for r in (s, m)))
    row("export cases/min per worker", s["export"]["cases_per_min"], m["export"]["cases_per_min"])
    if "inference" in s:
        row("inference s per CT (CPU)", *(r["inference"]["seconds_per_ct"] for r in (s, m)))
    stored = m["bucket_mb_per_file"]
    print(f"bucket MB per imported file: {sum(stored.values()):.3f} ({stored})")
    scale = m["batch2"]["aggregate_files_s"] / m["batch1"]["aggregate_files_s"]
    print(
        f"\nmulti-host ingest scaling, 2 worker hosts / 1 (aggregate files/s): {scale:.2f}"
        f" (ingest hosts: {m['batch2']['hosts']}; all on {os.cpu_count()} shared CPUs)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
