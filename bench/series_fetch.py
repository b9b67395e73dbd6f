"""Series fetch: one streamed series body vs one pixels request per slice.

    .venv/bin/python bench/series_fetch.py [--slices 300] [--repeat 3]

Builds a synthetic CT (fixtures.build_ct_datasets), indexes it into a temporary
SQLite database (DATABASE_URL unset, REFSET_VAR_DIR = a temp dir), starts
`manage.py runserver` on a free loopback port, and fetches with http.client (one
keep-alive connection, a manager's session cookie): time to first slice and the
whole series, through GET /api/v1/series/{id}/pixels/ and through
GET /api/v1/instances/{id}/pixels/ slice by slice. Prints medians and ratios.
Only ratios within one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench-manager", "bench-password-1"

SETUP = """
import django, fixtures
django.setup()
from django.contrib.auth import get_user_model
from annotation_server.accounts.models import Role
from annotation_server.projects.models import LabelSchema, Project
from annotation_server.projects.services import grant_role
from annotation_server.imaging.services import index_datasets
user = get_user_model().objects.create_user({user!r}, password={password!r})
project = Project.objects.create(slug="bench", name="bench", modality="CT",
                                 label_schema=LabelSchema.objects.first())
grant_role(project, user, Role.MANAGER)
datasets, _ = fixtures.build_ct_datasets(slices={slices}, seed=1)
series = index_datasets(project, datasets).series[0]
from django.test import Client
browser = Client()
browser.force_login(user)
print(browser.cookies["sessionid"].value)
print(series.pk, ",".join(str(i) for i in
      series.instances.order_by("slice_index").values_list("id", flat=True)))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(conn: http.client.HTTPConnection, path: str, auth: str, first_chunk=False):
    """GET path; returns (seconds to the first body bytes, seconds in all, bytes)."""
    start = time.perf_counter()
    conn.request("GET", path, headers={"Cookie": auth})
    response = conn.getresponse()
    assert response.status == 200, (path, response.status, response.read()[:200])
    first = response.read(8 if first_chunk else 0) if first_chunk else b""
    t_first = time.perf_counter() - start
    if first_chunk:  # the first record: its header length, header and pixels
        n = int.from_bytes(first[:4], "little")
        head = first[4:] + response.read(n - 4 + 4)
        nbytes = json.loads(head[:n])["nbytes"]
        first += head + response.read(nbytes)
        t_first = time.perf_counter() - start
    body = first + response.read()
    return t_first, time.perf_counter() - start, len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="refset-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(
            REFSET_VAR_DIR=tmp,
            REFSET_MEDIA_ROOT=str(Path(tmp) / "media"),
            DJANGO_SETTINGS_MODULE="annotation_server.settings",
            PYTHONPATH=str(ROOT),
        )
        env.pop("CELERY_BROKER_URL", None)
        py = sys.executable
        subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        t0 = time.perf_counter()
        script = SETUP.format(user=USER, password=PASSWORD, slices=args.slices)
        out = (
            subprocess.run(
                [py, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
            )
            .stdout.strip()
            .splitlines()
        )
        session, (series_id, ids) = out[-2], out[-1].split(" ")
        instance_ids = ids.split(",")
        print(f"built and indexed {len(instance_ids)} slices in {time.perf_counter() - t0:.1f} s")
        port = free_port()
        server = subprocess.Popen(
            [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--nothreading"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        raise SystemExit("runserver did not start") from None
                    time.sleep(0.2)
            # A session cookie, as the viewer has (Basic auth would hash the password on
            # every request and measure PBKDF2 instead of pixel delivery).
            auth = f"sessionid={session}"
            stream_first, stream_all, per_first, per_all = [], [], [], []
            size = 0
            for _ in range(args.repeat):
                conn = http.client.HTTPConnection("127.0.0.1", port)
                first, total, size = get(
                    conn, f"/api/v1/series/{series_id}/pixels/", auth, first_chunk=True
                )
                stream_first.append(first)
                stream_all.append(total)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port)
                start = time.perf_counter()
                for i, instance_id in enumerate(instance_ids):
                    f, _, _ = get(conn, f"/api/v1/instances/{instance_id}/pixels/", auth)
                    if i == 0:
                        per_first.append(f)
                per_all.append(time.perf_counter() - start)
                conn.close()
        finally:
            server.terminate()
            server.wait(timeout=20)
    n = len(instance_ids)
    med = statistics.median
    print(f"series of {n} slices, {size / 1e6:.1f} MB, median of {args.repeat} runs")
    print(
        f"  series endpoint : first slice {med(stream_first) * 1000:7.1f} ms, "
        f"whole series {med(stream_all):6.2f} s ({n / med(stream_all):6.0f} slices/s)"
    )
    print(
        f"  per-slice GETs  : first slice {med(per_first) * 1000:7.1f} ms, "
        f"whole series {med(per_all):6.2f} s ({n / med(per_all):6.0f} slices/s)"
    )
    print(
        f"  ratio per-slice / series: whole series {med(per_all) / med(stream_all):.2f}x, "
        f"first slice {med(per_first) / med(stream_first):.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
