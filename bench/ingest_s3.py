"""Ingest of one CT study onto the local disk vs onto S3 object storage, in one run.

    .venv/bin/python bench/ingest_s3.py [--slices 300] [--repeat 3] [--workers N]

On a synthetic chest CT (``python -m fixtures ct --slices N``, 512x512, 16-bit),
our ingest() (validate, de-identify, store, index; without the follow-up series
stream and QC jobs, as bench/ingest.py) into a fresh project per run (a new
de-identification secret, so new objects every run, no dedup), against a
temporary SQLite database, with the files stored:

  local: Django's FileSystemStorage in a temporary media folder (the default);
  s3:    django-storages' S3Storage on a SeaweedFS server (tests/seaweed.py:
         `weed server` with its S3 gateway on loopback, data in a temporary
         folder on the same disk), reached over HTTP with signed requests.

Each serially (1 process) and with the pool of worker processes (--workers,
default one per CPU), the variants interleaved within each repetition. Prints
the median files/s and MB/s of each and the ratios s3 / local. Both storages
run on this machine: the S3 figure is what the protocol costs (HTTP, signing,
the server's own writes), not a network's latency. Machines are shared and
noisy: quote the ratios, from one run.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fixtures  # noqa: E402
from tests.seaweed import run_seaweed  # noqa: E402


def setup_django(var_dir: Path) -> None:
    for name in ("DATABASE_URL", "REFSET_MEDIA_ROOT", "REFSET_STORAGE_BACKEND"):
        os.environ.pop(name, None)
    os.environ["REFSET_VAR_DIR"] = str(var_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "annotation_server.settings"
    os.environ.setdefault(
        "REFSET_KEY_ENCRYPTION_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode()
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def use_storage(default: dict) -> None:
    """Make `default` the default storage of this process (and of the ingest
    workers it forks)."""
    from django.conf import settings
    from django.core.files.storage import default_storage, storages
    from django.utils.functional import empty

    settings.STORAGES = {**settings.STORAGES, "default": default}
    storages.__dict__.pop("backends", None)  # a cached_property
    storages._backends = None
    storages._storages = {}
    default_storage._wrapped = empty


def run_once(folder: Path, n: int, workers: int) -> tuple[float, int, int]:
    """One import into a new project: (seconds, files imported, worker processes)."""
    from annotation_server.imaging.ingest.pipeline import ingest
    from annotation_server.imaging.ingest.sources import Limits, from_paths
    from tests.factories import ProjectFactory

    project = ProjectFactory(slug=f"bench-{n}", name=f"Bench {n}")
    t0 = time.perf_counter()
    report = ingest(
        project,
        from_paths([folder], Limits()),
        source="bench",
        prebuild_streams=False,
        run_qc=False,
        workers=workers,
    )
    elapsed = time.perf_counter() - t0
    s = report.summary()
    assert s["rejected"] == 0 and s["imported"] > 0, s
    return elapsed, s["imported"], report.workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="ingest worker processes of the pool runs (default: one per CPU)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refset-bench-s3-") as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        fixtures.generate_ct(tmp / "ct", slices=args.slices, seed=0)
        (tmp / "ct" / "truth.json").unlink()
        files = sorted((tmp / "ct").glob("*.dcm"))
        mb = sum(f.stat().st_size for f in files) / 1e6
        print(
            f"data: {len(files)} CT slices 512x512, {mb:.1f} MB "
            f"(generated in {time.perf_counter() - t0:.1f} s)"
        )
        setup_django(tmp / "var")
        from annotation_server.imaging import storage
        from annotation_server.imaging.ingest import parallel

        pool = args.workers or parallel.cpu_count()
        local = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp / "media")},
        }
        with run_seaweed(tmp / "seaweed") as s3:
            print(f"S3: SeaweedFS at {s3.endpoint_url}, bucket {s3.bucket}")
            remote = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": s3.storage_options()}
            variants = {
                ("local", 1): local,
                ("local", pool): local,
                ("s3", 1): remote,
                ("s3", pool): remote,
            }
            times: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
            used: dict[tuple[str, int], int] = {}
            n = 0
            for i in range(args.repeat):
                order = list(variants) if i % 2 == 0 else list(reversed(variants))
                for variant in order:
                    use_storage(variants[variant])
                    n += 1
                    elapsed, imported, workers = run_once(tmp / "ct", n, variant[1])
                    assert imported == len(files)
                    times[variant].append(elapsed)
                    used[variant] = workers
                    print(
                        f"  run {i + 1} {variant[0]:5s} {workers} process(es): "
                        f"{len(files) / elapsed:6.1f} files/s  ({storage.describe()})"
                    )
            s3_runs = sum(len(v) for k, v in times.items() if k[0] == "s3")
            objects = len(s3.keys("instances/"))
            assert objects == s3_runs * len(files), (objects, s3_runs, len(files))
            print(f"S3 holds {objects} instance objects ({s3_runs} imports x {len(files)} files)")

        print()
        print(f"median of {args.repeat} (files/s, MB/s):")
        rate = {}
        for variant, values in times.items():
            median = statistics.median(values)
            rate[variant] = len(files) / median
            print(
                f"  {variant[0]:5s} {used[variant]} process(es): {rate[variant]:7.1f} files/s "
                f"{mb / median:6.1f} MB/s"
            )
        print()
        for workers in sorted({w for _, w in variants}):
            ratio = rate[("s3", workers)] / rate[("local", workers)]
            print(
                f"ratio s3 / local, {used[('s3', workers)]} process(es): {ratio:.2f} "
                "(files/s; 1.00 = as fast as the local disk)"
            )


if __name__ == "__main__":
    main()
