"""A window drag on a large radiograph: what the screen shows while it runs is
computed from every full-resolution pixel in view (lut.js renderVisible), checked
pixel by pixel against an independent implementation of the DICOM window: fitted,
each device pixel the window of the area-weighted mean of the raw values it covers,
drawn one to one; magnified, the image's own pixels. The overlays are still drawn,
and at rest the whole image is painted at full resolution again, every pixel the
window of its raw value (at zoom 1 and 0.5)."""

from __future__ import annotations

import numpy as np
import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import ReadingTask
from tests.browser.helpers import login, wait_first_image

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SIZE = 2048  # 4.2 Mpixel: over lut.js VISIBLE_MIN_PIXELS
# One extreme pixel on no k-th row or column for k = 2, 3, 4: a preview that keeps
# every k-th pixel never shows it; a view computed from every pixel does.
SPIKE = (1001, 1001)

# The window (PS3.3 C.11.2.1.2, written again here), inverted for MONOCHROME1.
WINDOW = """
const windowOf = (ws) => {
  const { center, width } = ws.window;
  const invert = ws.headerInvert !== ws.invert;
  const lo = center - 0.5 - (width - 1) / 2;
  const hi = center - 0.5 + (width - 1) / 2;
  return (x) => {
    const ramp = Math.round(((x - (center - 0.5)) / (width - 1) + 0.5) * 255);
    const g = x <= lo ? 0 : x > hi ? 255 : ramp;
    return invert ? 255 - g : g;
  };
};
"""

# Drag the window without letting it rest (the test ends the drag itself, so that a
# slow machine cannot turn the drag's paint into the resting one), then compare the
# image the view drew with the window computed here from the frame's raw values:
# minified, each output pixel covers [i / f, (i + 1) / f) of the image along each
# axis (f: device pixels per image pixel), and shows the window of the area-weighted
# mean of the raw values under it (the mean rounded to an integer, either way);
# magnified, each output pixel is one image pixel.
DRAG_AND_CHECK = (
    """
async ({ spike, measure }) => {
"""
    + WINDOW
    + """
  const ws = window.__ws;
  const vp = ws.viewport;
  const r = ws.renderer;
  const next = () => new Promise((resolve) => requestAnimationFrame(resolve));
  if (measure) ws.measurements.push({ slice_index: ws.slice, a: measure[0], b: measure[1] });
  const start = { ...ws.window };
  for (let i = 1; i <= 4; i += 1) {
    ws.setWindow(start.center - 9 * i, start.width * (1 - 0.05 * i), { custom: true });
    clearTimeout(ws._sharpTimer);
    await next();
  }
  await next();
  const shown = vp.image;
  const canvas = r.visible && r.visible.canvas;
  const result = { mode: r.lastMode, drawn: shown === canvas && Boolean(canvas) };
  if (!canvas) return result;
  const [c0, r0, rw, rh] = canvas.imageRect;
  const { columns, rows } = ws.frames[ws.slice].header;
  const values = ws.frames[ws.slice].values;
  const fx = vp.zoom * vp.sx * vp.dpr;
  const fy = vp.zoom * vp.sy * vp.dpr;
  const reduced = fx < 1 && fy < 1;
  const win = windowOf(ws);
  // output pixel i's footprint along one axis, in image pixels: [start, end)
  const span = (i, f, n) => (reduced ? [i / f, Math.min((i + 1) / f, n)] : [i, i + 1]);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const i0 = Math.round(c0 * (reduced ? fx : 1));
  const j0 = Math.round(r0 * (reduced ? fy : 1));
  let worst = 0;
  let off = 0;
  for (let by = 0; by < canvas.height; by += 1) {
    const [ya, yb] = span(j0 + by, fy, rows);
    for (let bx = 0; bx < canvas.width; bx += 1) {
      const [xa, xb] = span(i0 + bx, fx, columns);
      let s = 0;
      let a = 0;
      for (let y = Math.floor(ya); y < Math.ceil(yb); y += 1) {
        const wy = Math.min(y + 1, yb) - Math.max(y, ya);
        for (let x = Math.floor(xa); x < Math.ceil(xb); x += 1) {
          const w = (Math.min(x + 1, xb) - Math.max(x, xa)) * wy;
          s += values[y * columns + x] * w;
          a += w;
        }
      }
      const mean = s / a;
      const got = data[4 * (by * canvas.width + bx)];
      const d = Math.min(
        Math.abs(got - win(Math.floor(mean))), Math.abs(got - win(Math.ceil(mean))));
      if (d) off += 1;
      if (d > worst) worst = d;
    }
  }
  const at = (bx, by) => data[4 * (by * canvas.width + bx)];
  const sx = Math.floor(reduced ? spike[0] * fx - i0 : spike[0] - c0);
  const sy = Math.floor(reduced ? spike[1] * fy - j0 : spike[1] - r0);
  const around = [at(sx - 2, sy), at(sx + 2, sy), at(sx, sy - 2), at(sx, sy + 2)];
  // the screen shows the drag's canvas one to one (minified: no smoothing), away
  // from the overlays: a patch around the spike, screen pixel against canvas pixel
  let screenOff = -1;
  if (reduced) {
    screenOff = 0;
    const [x, y] = vp.toScreen([spike[0], spike[1]]);
    const px = Math.round(x * vp.dpr) - 20;
    const py = Math.round(y * vp.dpr) - 20;
    const screen = vp.ctx.getImageData(px, py, 40, 40).data;
    for (let v = 0; v < 40; v += 1) {
      for (let u = 0; u < 40; u += 1) {
        // the canvas pixel whose device square holds this screen pixel's centre
        const [ic, ir] = vp.toImage([(px + u + 0.5) / vp.dpr, (py + v + 0.5) / vp.dpr]);
        const want = at(Math.floor(ic * fx) - i0, Math.floor(ir * fy) - j0);
        if (screen[4 * (v * 40 + u)] !== want) screenOff += 1;
      }
    }
  }
  let line = null;
  if (measure) {
    // the measurement's line, on the screen canvas, halfway along
    const [x, y] = vp.toScreen([(measure[0][0] + measure[1][0]) / 2, measure[0][1]]);
    const px = vp.ctx.getImageData(Math.round(x * vp.dpr), Math.round(y * vp.dpr), 1, 1).data;
    line = [px[0], px[1], px[2]];
  }
  ws._windowMoving(); // the drag rests
  return {
    ...result, reduced, screenPixels: Boolean(canvas.screenPixels), f: [fx, fy],
    size: [canvas.width, canvas.height], rect: [c0, r0, rw, rh],
    image: [columns, rows], screen: [vp.cssWidth * vp.dpr, vp.cssHeight * vp.dpr],
    worst, off, total: canvas.width * canvas.height, spike: at(sx, sy), around, line, screenOff,
  };
}
"""
)

SHARP = (
    "window.__ws.viewport.image === window.__ws.renderer.canvas"
    " && window.__ws.renderer.key === [window.__ws.slice, window.__ws.window.center,"
    " window.__ws.window.width, window.__ws.headerInvert !== window.__ws.invert].join('|')"
    f" && window.__ws.renderer.canvas.width === {SIZE}"
)

# At rest: the full-resolution canvas the view draws holds every image pixel's window
# (every 5th row, all columns), and at `zoom` 1 the screen shows it pixel for pixel
# (a patch around the image's centre, away from the overlays).
SETTLED = (
    """
async ({ zoom }) => {
"""
    + WINDOW
    + """
  const ws = window.__ws;
  const vp = ws.viewport;
  const next = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const { columns, rows } = ws.frames[ws.slice].header;
  vp.zoomAt(zoom / vp.devicePixelsPerImagePixel, vp.cssWidth / 2, vp.cssHeight / 2);
  vp.centreOn([columns / 2, rows / 2]);
  ws.redraw();
  await next();
  await next();
  const canvas = ws.renderer.canvas;
  const values = ws.frames[ws.slice].values;
  const win = windowOf(ws);
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let off = 0;
  let checked = 0;
  for (let y = 0; y < rows; y += 5) {
    for (let x = 0; x < columns; x += 1) {
      if (data[4 * (y * columns + x)] !== win(values[y * columns + x])) off += 1;
      checked += 1;
    }
  }
  let screenOff = -1;
  if (zoom === 1) {
    screenOff = 0;
    const [x, y] = vp.toScreen([columns / 2, rows / 2]);
    const px = Math.round(x * vp.dpr) - 30;
    const py = Math.round(y * vp.dpr) - 30;
    const screen = vp.ctx.getImageData(px, py, 60, 60).data;
    for (let v = 0; v < 60; v += 1) {
      for (let u = 0; u < 60; u += 1) {
        const [ic, ir] = vp.toImage([(px + u + 0.5) / vp.dpr, (py + v + 0.5) / vp.dpr]);
        const want = win(values[Math.floor(ir) * columns + Math.floor(ic)]);
        if (screen[4 * (v * 60 + u)] !== want) screenOff += 1;
      }
    }
  }
  return {
    shown: vp.image === canvas, size: [canvas.width, canvas.height], off, checked, screenOff,
    f: vp.devicePixelsPerImagePixel,
  };
}
"""
)


def _radiograph_task(project, reader, photometric: str) -> ReadingTask:
    ds, _ = fixtures.build_xr_dataset(seed=7, size=SIZE, photometric=photometric)
    pixels = ds.pixel_array.copy()
    # the spike: the stored extreme farthest from the values around it
    around = pixels[SPIKE[1] - 6 : SPIKE[1] + 7, SPIKE[0] - 6 : SPIKE[0] + 7]
    high = around.mean() < (int(pixels.min()) + int(pixels.max())) / 2
    pixels[SPIKE[1], SPIKE[0]] = pixels.max() if high else pixels.min()
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    series = index_datasets(project, [ds]).series[0]
    case = Case.objects.create(
        project=project, code="DX0007", series=series, state=Case.State.READING, qc_status="pass"
    )
    return ReadingTask.objects.create(case=case, reader=reader)


def _open(page, live_server, task) -> None:
    login(page, live_server, "reader_a", "en")
    page.goto(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page, timeout=30_000)
    page.wait_for_function(SHARP)


def test_window_drag_on_a_fitted_radiograph_shows_every_full_resolution_pixel(
    live_server, page, project, reader_a
):
    task = _radiograph_task(project, reader_a, "MONOCHROME2")
    _open(page, live_server, task)
    measure = [[300, 200], [1700, 200]]
    out = page.evaluate(DRAG_AND_CHECK, {"spike": list(SPIKE), "measure": measure})
    assert out["mode"] == "visible" and out["drawn"]
    fx, fy = out["f"]
    assert fx < 1 and fy < 1 and out["reduced"] and out["screenPixels"]
    # the screen's resolution, not the image's: the whole image in view, one output
    # pixel per device pixel it covers
    assert out["rect"][:2] == [0, 0]
    assert SIZE <= out["rect"][2] < SIZE + 1 / fx and SIZE <= out["rect"][3] < SIZE + 1 / fy
    assert out["size"] == [-(-SIZE * fx // 1), -(-SIZE * fy // 1)]
    assert out["size"][0] <= out["screen"][0] and out["size"][1] <= out["screen"][1]
    # every output pixel within one grey level of the window of the area-weighted mean
    # of the full-resolution pixels it covers
    assert out["worst"] <= 1, out
    assert out["off"] < out["total"] * 0.25, out
    # drawn one to one on the screen
    assert out["screenOff"] == 0, out
    # the one extreme pixel sets its output pixel apart from those around it
    assert min(abs(out["spike"] - a) for a in out["around"]) >= 10, out
    # the overlay is drawn over the image during the drag (#80deea measurement line)
    red, green, blue = out["line"]
    assert green > red + 40 and blue > red + 40, out["line"]
    # once the drag rests, the whole image again at full resolution, every pixel its
    # own window, at the fitted zoom, at 0.5 and at 1 (the screen pixel for pixel)
    page.wait_for_function(SHARP)
    for zoom in (0.5, 1):
        settled = page.evaluate(SETTLED, {"zoom": zoom})
        assert settled["shown"] and settled["size"] == [SIZE, SIZE], settled
        assert abs(settled["f"] - zoom) < 1e-9, settled
        assert settled["off"] == 0 and settled["checked"] > SIZE * SIZE / 6, settled
    assert settled["screenOff"] == 0, settled


def test_window_drag_magnified_monochrome1_windows_only_the_visible_pixels(
    live_server, page, project, reader_a
):
    task = _radiograph_task(project, reader_a, "MONOCHROME1")
    _open(page, live_server, task)
    assert page.evaluate("window.__ws.headerInvert") is True
    # 1.5 device pixels per image pixel, centred on the spike
    page.evaluate(
        "(() => { const vp = window.__ws.viewport;"
        " vp.zoomAt(1.5 / vp.devicePixelsPerImagePixel, vp.cssWidth / 2, vp.cssHeight / 2);"
        f" vp.centreOn([{SPIKE[0]}, {SPIKE[1]}]); window.__ws.redraw(); }})()"
    )
    out = page.evaluate(DRAG_AND_CHECK, {"spike": list(SPIKE), "measure": None})
    assert out["mode"] == "visible" and out["drawn"]
    assert not out["reduced"] and not out["screenPixels"]
    # only the part in view: far fewer pixels than the image, and the spike among them
    c0, r0, w, h = out["rect"]
    assert w * h < SIZE * SIZE / 2
    assert c0 <= SPIKE[0] < c0 + w and r0 <= SPIKE[1] < r0 + h
    assert out["size"] == [w, h]
    # pixel for pixel what the full paint windows (inverted: MONOCHROME1)
    assert out["worst"] == 0, out
    assert min(abs(out["spike"] - a) for a in out["around"]) >= 10, out
    page.wait_for_function(SHARP)
    settled = page.evaluate(SETTLED, {"zoom": 1})
    assert settled["shown"] and settled["off"] == 0 and settled["screenOff"] == 0, settled
