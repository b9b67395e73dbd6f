"""Reading workstation in the browser: time to first image, whole series, scroll frames.

    .venv/bin/python bench/viewer_browser.py [--slices 300] [--matrix 512] [--repeat 3]

Builds a synthetic CT (fixtures.build_ct_datasets), indexes it into a temporary
SQLite database as a case in reading with one reader's task, starts `manage.py
runserver --insecure` (static files) on a free loopback port and opens
/read/<task>/ in headless Debian Chromium (a fresh browser context per repeat, so
nothing is cached). It reads the page's own performance marks: ws:first-image
(first windowed slice on the canvas) and ws:series-loaded (whole series
prefetched), both from navigation start. Baselines in the same page and run:
a bare fetch().arrayBuffer() of the same series body (the transport floor) and
the time to its first chunk. Then it scrolls through every slice, one per
animation frame, and reports the paint time per slice (window LUT + draw +
overlays) and the frame interval, against the 16.7 ms budget of a 60 Hz display.
Only ratios within one run mean anything on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "bench-reader", "bench-password-1"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

SETUP = """
import django, fixtures
django.setup()
from django.contrib.auth import get_user_model
from annotation_server.accounts.models import Role
from annotation_server.projects.models import Case, LabelSchema, Project, ReadingProtocol
from annotation_server.projects.services import grant_role
from annotation_server.imaging.services import index_datasets
from annotation_server.imaging.api.views import build_series_stream
from annotation_server.reading.models import ReadingTask
user = get_user_model().objects.create_user({user!r}, password={password!r})
project = Project.objects.create(slug="bench", name="bench", modality="CT",
    label_schema=LabelSchema.objects.get(key="lung-nodule-ct"))
ReadingProtocol.objects.create(project=project)
grant_role(project, user, Role.READER)
datasets, _ = fixtures.build_ct_datasets(slices={slices}, seed=1, matrix={matrix})
series = index_datasets(project, datasets).series[0]
build_series_stream(series)  # as the import job does: the first open reads a stored file
case = Case.objects.create(project=project, code="B0001", series=series, state="reading",
    qc_status="pass")
task = ReadingTask.objects.create(case=case, reader=user)
from django.test import Client
browser = Client()
browser.force_login(user)
print(browser.cookies["sessionid"].value)
print(task.pk, series.pk)
"""

SCROLL = """
async () => {
  const ws = window.__ws;
  const frames = [];
  ws.paintTimes.length = 0;
  let last = performance.now();
  for (let i = 0; i < ws.count; i += 1) {
    ws.goToSlice(i);
    await new Promise((resolve) => requestAnimationFrame(resolve));
    frames.push(performance.now() - last);
    last = performance.now();
  }
  return {paint: ws.paintTimes.slice(), frames};
}
"""

BASELINE = """
async (url) => {
  const t0 = performance.now();
  const response = await fetch(url, {credentials: 'same-origin', cache: 'no-store'});
  const reader = response.body.getReader();
  let first = null;
  let bytes = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    if (first === null) first = performance.now() - t0;
    bytes += value.length;
  }
  const streamed = performance.now() - t0;
  const t1 = performance.now();
  const again = await fetch(url, {credentials: 'same-origin', cache: 'no-store'});
  const whole = await again.arrayBuffer();
  return {first, streamed, arrayBuffer: performance.now() - t1, bytes: whole.byteLength};
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="refset-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
        env.update(
            REFSET_VAR_DIR=tmp,
            REFSET_MEDIA_ROOT=str(Path(tmp) / "media"),
            DJANGO_SETTINGS_MODULE="annotation_server.settings",
            PYTHONPATH=str(ROOT),
            DJANGO_LANGUAGE_CODE="en",
        )
        env.pop("CELERY_BROKER_URL", None)
        py = sys.executable
        subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        script = SETUP.format(user=USER, password=PASSWORD, slices=args.slices, matrix=args.matrix)
        out = subprocess.run(
            [py, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True
        ).stdout
        lines = [line for line in out.splitlines() if line.strip()]
        session, (task_id, series_id) = lines[-2].strip(), lines[-1].split()
        port = free_port()
        server = subprocess.Popen(
            [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            results = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
                for _ in range(args.repeat):
                    context = browser.new_context(viewport={"width": 1600, "height": 1000})
                    context.add_cookies([{"name": "sessionid", "value": session, "url": base}])
                    page = context.new_page()
                    page.goto(f"{base}/read/{task_id}/")
                    page.wait_for_function(
                        "performance.getEntriesByName('ws:series-loaded').length", timeout=120_000
                    )
                    marks = page.evaluate(
                        "({first: performance.getEntriesByName('ws:first-image')[0].startTime,"
                        " series: performance.getEntriesByName('ws:series-loaded')[0].startTime,"
                        " nav: performance.getEntriesByType('navigation')[0].responseEnd})"
                    )
                    floor = page.evaluate(BASELINE, f"/api/v1/series/{series_id}/pixels/")
                    scroll = page.evaluate(SCROLL)
                    results.append((marks, floor, scroll))
                    context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait()

    def med(key):
        return statistics.median(key(r) for r in results)

    first = med(lambda r: r[0]["first"])
    series = med(lambda r: r[0]["series"])
    page_ready = med(lambda r: r[0]["nav"])
    floor_first = med(lambda r: r[1]["first"])
    floor_stream = med(lambda r: r[1]["streamed"])
    floor_ab = med(lambda r: r[1]["arrayBuffer"])
    mb = results[0][1]["bytes"] / 1e6
    paints = [p for r in results for p in r[2]["paint"]]
    frames = [f for r in results for f in r[2]["frames"][1:]]
    print(f"series: {args.slices} slices of {args.matrix}x{args.matrix} int16, {mb:.1f} MB body")
    print(f"repeats: {args.repeat} (fresh browser context each), medians:")
    print(f"  page HTML received           {page_ready:8.1f} ms after navigation start")
    print(f"  first image on the canvas    {first:8.1f} ms after navigation start")
    print(f"  whole series prefetched      {series:8.1f} ms after navigation start")
    print(f"  floor: fetch first chunk     {floor_first:8.1f} ms (same body, same page)")
    print(f"  floor: fetch streamed body   {floor_stream:8.1f} ms")
    print(f"  floor: fetch().arrayBuffer() {floor_ab:8.1f} ms")
    print(
        f"  series prefetch / arrayBuffer floor: {(series - page_ready) / floor_ab:5.2f}x"
        " (prefetch counted from the page HTML)"
    )
    print(
        f"scroll through {args.slices} slices, one per frame: paint median"
        f" {statistics.median(paints):.2f} ms, p95 {pct(paints, 0.95):.2f} ms,"
        f" max {max(paints):.2f} ms"
    )
    print(
        f"  frame interval median {statistics.median(frames):.1f} ms,"
        f" p95 {pct(frames, 0.95):.1f} ms;"
        f" paint p95 / 16.7 ms budget = {pct(paints, 0.95) / 16.7:.2f}"
    )


if __name__ == "__main__":
    main()
