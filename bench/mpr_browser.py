"""Multiplanar views in the browser: reformat and thick-slab frame times against the
axial scroll, in the same page and run.

    .venv/bin/python bench/mpr_browser.py [--slices 300] [--matrix 512] [--repeat 1]

Builds the same synthetic CT case as bench/viewer_browser.py (its SETUP: a
temporary SQLite database, `manage.py runserver --insecure`, headless Debian
Chromium, a fresh browser context per repeat), opens /read/<task>/ and waits
until the whole series is prefetched. Then, one step per animation frame:

  axial       scroll through every slice, one view (the baseline: what the
              workstation did before multiplanar views);
  first coronal   the switch to the 1 x 3 layout: the coronal view's first
              reformat (cold) and paint, and the time from the switch until all
              three views are painted;
  coronal / sagittal   scroll the reformatted view through every row / column,
              in 1 x 3 (each frame repaints all three views);
  MIP axial   the axial view with a 10 mm and a 20 mm maximum-intensity slab,
              scrolled through every slice (one view); "x2": 10 mm, two slices
              per frame, as a fast wheel moves it between two paints;
  MIP coronal the coronal view with a 10 mm slab, scrolled, in 1 x 3;
  average axial 20 mm (one view), MinIP coronal 10 mm (1 x 3), likewise.

--compare REV serves, on every other page load of the same run, reformat.js as it
was at git revision REV (e.g. the commit before a change to it), and prints both
tables and the ratio of their paint p95: a before/after that shares the machine's
load.

The last column counts the main view's slabs slid from the previous one
(reformat.js SlabWindow) and those computed afresh (mpr.js slabCounts).

For each it reports the paint time per frame (ws.paintTimes: reformat or slab,
window LUT, putImageData, drawImage and overlays of every shown view) and the
frame interval, median and p95, against the 16.7 ms budget of a 60 Hz display.
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
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import viewer_browser as vb  # noqa: E402

from tests.chromium import launch  # noqa: E402

RUN = """
async () => {
  const ws = window.__ws;
  const mpr = ws.mpr;
  const next = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const out = {};
  async function scroll(name, count, step) {
    await next();
    await next();
    ws.paintTimes.length = 0;
    const counts = { ...mpr.slabCounts };
    const frames = [];
    let last = performance.now();
    for (let i = 0; i < count; i += 1) {
      step(i);
      await next();
      frames.push(performance.now() - last);
      last = performance.now();
    }
    const slabs = mpr.slabCounts;
    out[name] = { paint: ws.paintTimes.slice(), frames: frames.slice(1),
                  slid: slabs.slid - counts.slid, fresh: slabs.fresh - counts.fresh };
  }
  // Every slice there (a thick slab slides only over a complete volume).
  const size = mpr.volume ? mpr.volume.I * mpr.volume.J : 0;
  out.volume = {
    count: ws.count,
    loaded: ws.loadedCount,
    usable: ws.frames.filter((f) => f && f.values && f.values.length === size).length,
  };
  // Baseline: the axial scroll in one view.
  await scroll("axial", ws.count, (i) => ws.goToSlice(i));
  // The first coronal frame after load (cold reformat), then all three views.
  ws.goToSlice(Math.floor(ws.count / 2));
  await next();
  const t0 = performance.now();
  mpr.setLayout("1x3");
  const coronal = mpr.panes.coronal;
  while (!coronal.frame) await next();
  const firstPaint = performance.now() - t0;
  const cold = coronal.lastMs;
  const t1 = performance.now();
  coronal.frameKey = "";
  coronal.currentFrame();
  const reformatOnly = performance.now() - t1;
  out.first = { wall: firstPaint, paneMs: cold, reformatMs: reformatOnly };
  const rows = coronal.plane.depth;
  // Where the coronal scroll's paint goes (1 x 3): each view's reformat, window
  // (LUT + putImageData), draw (drawImage and overlays), overlays alone and corner
  // texts, summed over the three views per frame.
  const parts = { reformat: [], window: [], draw: [], overlay: [], corners: [] };
  const spent = { reformat: 0, window: 0, draw: 0, overlay: 0, corners: 0 };
  const undo = [];
  const timed = (object, method, part) => {
    const own = Object.prototype.hasOwnProperty.call(object, method);
    const original = object[method];
    object[method] = function (...args) {
      const t = performance.now();
      try {
        return original.apply(this, args);
      } finally {
        spent[part] += performance.now() - t;
      }
    };
    undo.push(() => (own ? (object[method] = original) : delete object[method]));
  };
  for (const pane of Object.values(mpr.panes)) {
    timed(pane, "currentFrame", "reformat");
    timed(pane.renderer, "render", "window");
    timed(pane.viewport, "draw", "draw");
    timed(pane, "overlay", "overlay");
    timed(pane, "_cornerTexts", "corners");
  }
  await scroll("coronal", rows, (i) => {
    for (const key of Object.keys(spent)) {
      if (i > 0) parts[key].push(spent[key]);
      spent[key] = 0;
    }
    coronal.goTo(i);
  });
  for (const restore of undo) restore();
  out.parts = parts;
  const sagittal = mpr.panes.sagittal;
  await scroll("sagittal", sagittal.plane.depth, (i) => sagittal.goTo(i));
  // Thick slabs.
  mpr.setLayout("1x1", mpr.native);
  mpr.setSlab({ on: true, mode: "mip", mm: 10 });
  await scroll("mip10 axial", ws.count, (i) => ws.goToSlice(i));
  mpr.setSlab({ on: true, mode: "mip", mm: 20 });
  await scroll("mip20 axial", ws.count, (i) => ws.goToSlice(i));
  // Two slices per frame, as a fast wheel moves the view between two paints.
  mpr.setSlab({ on: true, mode: "mip", mm: 10 });
  await scroll("mip10 axial x2", Math.floor(ws.count / 2), (i) => ws.goToSlice(2 * i));
  mpr.setLayout("1x3");
  mpr.setSlab({ on: true, mode: "mip", mm: 10 });
  await scroll("mip10 coronal", rows, (i) => coronal.goTo(i));
  mpr.setSlab({ on: true, mode: "minip", mm: 10 });
  await scroll("minip10 coronal", rows, (i) => coronal.goTo(i));
  mpr.setLayout("1x1", mpr.native);
  mpr.setSlab({ on: true, mode: "avg", mm: 20 });
  await scroll("avg20 axial", ws.count, (i) => ws.goToSlice(i));
  return out;
}
"""


def reformat_route(old_body: str | None):
    """A route handler serving reformat.js as `old_body`, or as the server has it.

    One parameter only: Playwright passes (route, request) to a handler that takes
    two, and a second parameter with a default (`old=old`) would get the request,
    always true, so that every page load got the old file (as this bench did until
    the slab counts showed it)."""

    def handle(route):
        response = route.fetch()
        route.fulfill(response=response, body=old_body if old_body else response.text())

    return handle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--matrix", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--compare", metavar="REV", help="git revision of reformat.js to compare")
    args = parser.parse_args()
    old_reformat = None
    if args.compare:
        old_reformat = subprocess.run(
            ["git", "show", f"{args.compare}:frontend_templates/static/refset/viewer/reformat.js"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
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
        script = vb.SETUP.format(
            user=vb.USER, password=vb.PASSWORD, slices=args.slices, matrix=args.matrix
        )
        out = vb.setup(py, script, env)
        lines = [line for line in out.splitlines() if line.strip()]
        session, (task_id, _series_id) = lines[-2].strip(), lines[-1].split()
        port = vb.free_port()
        server = subprocess.Popen(
            [py, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--insecure"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        results, compared = [], []
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            with sync_playwright() as pw:
                browser = launch(pw)
                variants = [False, True] if old_reformat else [False]
                for n in range(args.repeat):
                    for old in variants if n % 2 == 0 else variants[::-1]:
                        context = browser.new_context(
                            viewport={"width": 1600, "height": 1000}, bypass_csp=True
                        )
                        context.add_cookies([{"name": "sessionid", "value": session, "url": base}])

                        context.route(
                            "**/refset/viewer/reformat.js",
                            reformat_route(old_reformat if old else None),
                        )
                        page = context.new_page()
                        page.goto(f"{base}/read/{task_id}/")
                        page.wait_for_function(
                            "performance.getEntriesByName('ws:series-loaded').length",
                            timeout=300_000,
                        )
                        (compared if old else results).append(page.evaluate(RUN))
                        context.close()
                browser.close()
        finally:
            server.terminate()
            server.wait()

    print(
        f"volume: {args.slices} slices of {args.matrix}x{args.matrix} int16"
        f" (0.7 mm pixels, 1.25 mm slices); repeats: {args.repeat}; times in ms"
    )
    p95s = report("this tree's reformat.js", results)
    if compared:
        title = f"reformat.js at {args.compare} (same run, alternate page loads)"
        old_p95s = report(title, compared)
        print("paint p95, this tree / " + args.compare + ":")
        for name, p95 in p95s.items():
            print(f"  {name:15s} {p95:7.2f} / {old_p95s[name]:7.2f} = {p95 / old_p95s[name]:5.2f}")


RUNS = (
    "axial",
    "coronal",
    "sagittal",
    "mip10 axial",
    "mip20 axial",
    "mip10 axial x2",
    "mip10 coronal",
    "minip10 coronal",
    "avg20 axial",
)


def report(title: str, results) -> dict:
    pct = vb.pct
    print(title + ":")
    for r in results:
        v = r.get("volume")
        if v and v["usable"] != v["count"]:
            print(f"  only {v['usable']} of {v['count']} slices usable ({v['loaded']} loaded)")
    first = [r["first"] for r in results]
    print(
        "first coronal frame after load: switch to 1x3 until painted"
        f" {statistics.median(f['wall'] for f in first):.1f};"
        f" coronal view paint (cold reformat + window + draw)"
        f" {statistics.median(f['paneMs'] for f in first):.1f};"
        f" reformat alone {statistics.median(f['reformatMs'] for f in first):.1f}"
    )
    parts = [r["parts"] for r in results if r.get("parts")]
    if parts:
        print(
            "coronal scroll (1 x 3), per frame over the three views, p50 / p95: "
            + "; ".join(
                f"{key} {statistics.median(v := [x for p in parts for x in p[key]]):.2f}"
                f" / {pct(v, 0.95):.2f}"
                for key in parts[0]
            )
        )
    base_p95 = None
    p95s = {}
    print(
        f"{'run':15s} {'frames':>6s} {'paint p50':>10s} {'paint p95':>10s} {'max':>7s}"
        f" {'frame p50':>10s} {'frame p95':>10s} {'p95/16.7':>9s} {'p95/axial':>9s}"
        f" {'main slid/fresh':>16s}"
    )
    for name in RUNS:
        paints = [p for r in results for p in r[name]["paint"]]
        frames = [f for r in results for f in r[name]["frames"]]
        p95 = pct(paints, 0.95)
        p95s[name] = p95
        if base_p95 is None:
            base_p95 = p95
        print(
            f"{name:15s} {len(paints):6d} {statistics.median(paints):10.2f} {p95:10.2f}"
            f" {max(paints):7.2f} {statistics.median(frames):10.1f} {pct(frames, 0.95):10.1f}"
            f" {p95 / 16.7:9.2f} {p95 / base_p95:9.2f}"
            f" {sum(r[name].get('slid', 0) for r in results):>8d}/"
            f"{sum(r[name].get('fresh', 0) for r in results):<7d}"
        )
    return p95s


if __name__ == "__main__":
    main()
