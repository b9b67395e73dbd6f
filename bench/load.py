"""Load: simulated readers against the production setup, then the promises checked.

    .venv/bin/python bench/load.py [--readers 50] [--duration 60] [--gunicorn-workers 4]
        [--threads 4] [--cases-per-reader 8] [--readers-per-case 3] [--slices 16]
        [--matrix 64] [--database-url URL --broker-url URL]

Starts PostgreSQL and Redis on loopback (tests/harness.py; or uses the given
DATABASE_URL of an empty database and CELERY_BROKER_URL), migrates, seeds a
lung-CT project through the product's services (bench/loadseed.py: N readers with
a password each, synthetic CT series ingested, QC-checked and assigned, K readers
per case), then starts gunicorn (`annotation_server.wsgi`, several gthread
workers) and a Celery worker with production settings (DJANGO_DEBUG=0, secret
keys, ALLOWED_HOSTS=127.0.0.1; only the HTTPS redirect and secure cookies off, for
plain HTTP on loopback: bench/loadstack.py).

N simulated readers (bench/loadsim.py: asyncio + aiohttp, one session each) sign
in through the login form (all at once, before the timed window: reported apart)
and then work through their worklists for D seconds: open
the next case, fetch the series' pixel stream, create findings with client uids,
autosave them with versions (two tabs saving one finding or the case labels on
one version at once, two tabs sending one create, a stale tab saving after the
submit), heartbeats, case labels, submit. Prints per endpoint the count,
throughput, p50/p95/p99 latency, 409s, other 4xx, 5xx and unanswered requests.

Then checks against the database: every acknowledged save is there with its
version and the content of the last acknowledged write (zero lost writes); every
409 left the other tab's content (the loser's content only where it was re-sent
on the new version and acknowledged); no two saves acknowledged on one version;
acknowledged submits submitted; no 5xx, no unanswered request; the settle jobs
the submits queued all succeeded. Exits 1 if any check fails.

The client runs on the same machine as the servers: on a small shared machine
the figures are the whole stack's, client included; compare within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--duration", type=float, default=60, help="seconds")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--cases-per-reader", type=int, default=8)
    parser.add_argument("--readers-per-case", type=int, default=3)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--matrix", type=int, default=64)
    parser.add_argument("--database-url", default="", help="an empty database (default: start one)")
    parser.add_argument("--broker-url", default="", help="Redis (default: start one)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.loadsim import Options, report, run_readers
    from bench.loadstack import Stack, new_keys, production_env

    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="refset-load-"))
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        database_url, broker_url = args.database_url, args.broker_url
        if not database_url or not broker_url:
            from tests.harness import Postgres, Redis

            database_url = database_url or Postgres(stack).url
            broker_url = broker_url or Redis(stack).url
        env = production_env(
            database_url=database_url,
            broker_url=broker_url,
            queue=f"refset-load-{uuid.uuid4().hex[:8]}",
            media_root=str(tmp / "media"),
            var_dir=str(tmp / "var"),
            keys=new_keys(),
        )
        py = sys.executable
        subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        os.environ.update(env)  # this process seeds and checks with the same settings
        import django

        django.setup()
        from bench import loadseed

        cases = math.ceil(args.readers * args.cases_per_reader / args.readers_per_case)
        seeded = loadseed.seed(
            readers=args.readers,
            cases=cases,
            readers_per_case=args.readers_per_case,
            slices=args.slices,
            matrix=args.matrix,
        )
        print(
            f"seeded {args.readers} readers, {seeded.cases} cases ({args.slices} slices of "
            f"{args.matrix}x{args.matrix}, {args.readers_per_case} readers each), "
            f"{seeded.tasks} reads in {seeded.seconds:.0f} s",
            flush=True,
        )
        servers = Stack(env, tmp / "logs", workers=args.gunicorn_workers, threads=args.threads)
        stack.callback(servers.stop)
        servers.start()
        servers.warm_up()
        load = os.getloadavg()
        print(
            f"gunicorn {servers.workers} workers x {servers.threads} threads (gthread) on "
            f"{servers.base_url}, a Celery worker, PostgreSQL and Redis on loopback; "
            f"{os.cpu_count()} CPUs, load average {load[0]:.1f} before the run",
            flush=True,
        )
        print(
            f"{args.readers} readers sign in, then read for {args.duration:.0f} s ...",
            flush=True,
        )
        started = time.monotonic()
        recorder = asyncio.run(
            run_readers(
                servers.base_url,
                seeded.accounts,
                args.duration,
                Options(slices=args.slices),
            )
        )
        print(f"run ended after {time.monotonic() - started:.1f} s\n")
        print(report(recorder))
        print()
        from django.db import close_old_connections

        close_old_connections()
        verdict = loadseed.verify(recorder)
        for line in verdict.lines:
            print(line)
        logged = servers.errors_logged()
        if logged:
            print(f"\nerrors in the server/worker logs ({len(logged)}), first ones:")
            for entry in logged[:3]:
                print(entry)
        if verdict.failures:
            print(f"\nFAILED: {len(verdict.failures)} check(s)")
            for failure in verdict.failures[:30]:
                print(f"  {failure}")
            return 1
        print("\nall checks passed")
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
