"""A window drag on a large radiograph: what the screen shows while it runs is
computed from every full-resolution pixel in view (lut.js renderVisible), checked
pixel by pixel against an independent implementation of the DICOM window, with the
overlays still drawn; at rest the whole image is painted sharp again."""

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

# Drag the window without letting it rest (the test ends the drag itself, so that a
# slow machine cannot turn the drag's paint into the resting one), then compare the
# image the view drew with the window computed here from the frame's raw values:
# each output pixel the mean of the windowed source pixels of its block
# (PS3.3 C.11.2.1.2, written again here), inverted for MONOCHROME1.
DRAG_AND_CHECK = """
async ({ spike, measure }) => {
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
  const kx = Math.max(1, Math.floor(1 / (vp.zoom * vp.sx * vp.dpr)));
  const ky = Math.max(1, Math.floor(1 / (vp.zoom * vp.sy * vp.dpr)));
  const { center, width } = ws.window;
  const invert = ws.headerInvert !== ws.invert;
  const win = (x) => {
    const lo = center - 0.5 - (width - 1) / 2;
    const hi = center - 0.5 + (width - 1) / 2;
    if (x <= lo) return 0;
    if (x > hi) return 255;
    return Math.round(((x - (center - 0.5)) / (width - 1) + 0.5) * 255);
  };
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let worst = 0;
  let off = 0;
  for (let by = 0; by < canvas.height; by += 1) {
    for (let bx = 0; bx < canvas.width; bx += 1) {
      let s = 0;
      let n = 0;
      for (let y = r0 + by * ky; y < Math.min(r0 + (by + 1) * ky, rows); y += 1) {
        for (let x = c0 + bx * kx; x < Math.min(c0 + (bx + 1) * kx, columns); x += 1) {
          s += win(values[y * columns + x]);
          n += 1;
        }
      }
      let want = Math.round(s / n);
      if (invert) want = 255 - want;
      const got = data[4 * (by * canvas.width + bx)];
      const d = Math.abs(got - want);
      if (d) off += 1;
      if (d > worst) worst = d;
    }
  }
  const at = (bx, by) => data[4 * (by * canvas.width + bx)];
  const sx = Math.floor((spike[0] - c0) / kx);
  const sy = Math.floor((spike[1] - r0) / ky);
  const around = [at(sx - 2, sy), at(sx + 2, sy), at(sx, sy - 2), at(sx, sy + 2)];
  let line = null;
  if (measure) {
    // the measurement's line, on the screen canvas, halfway along
    const [x, y] = vp.toScreen([(measure[0][0] + measure[1][0]) / 2, measure[0][1]]);
    const px = vp.ctx.getImageData(Math.round(x * vp.dpr), Math.round(y * vp.dpr), 1, 1).data;
    line = [px[0], px[1], px[2]];
  }
  ws._windowMoving(); // the drag rests
  return {
    ...result, k: [kx, ky], size: [canvas.width, canvas.height], rect: [c0, r0, rw, rh],
    image: [columns, rows], screen: [vp.cssWidth * vp.dpr, vp.cssHeight * vp.dpr],
    worst, off, total: canvas.width * canvas.height, spike: at(sx, sy), around, line,
  };
}
"""

SHARP = (
    "window.__ws.viewport.image === window.__ws.renderer.canvas"
    " && window.__ws.renderer.key === [window.__ws.slice, window.__ws.window.center,"
    " window.__ws.window.width, window.__ws.headerInvert !== window.__ws.invert].join('|')"
    f" && window.__ws.renderer.canvas.width === {SIZE}"
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
    kx, ky = out["k"]
    assert kx >= 2 and ky >= 2  # minified: one output pixel per k x k block
    # about the screen's resolution, not the image's: the whole image in view, in
    # blocks, and no more output pixels than screen pixels times 4
    assert out["rect"] == [0, 0, SIZE, SIZE]
    assert out["size"] == [-(-SIZE // kx), -(-SIZE // ky)]
    assert out["size"][0] * out["size"][1] <= 4 * out["screen"][0] * out["screen"][1]
    # every output pixel within one grey level (rounding) of the mean of its windowed
    # full-resolution pixels
    assert out["worst"] <= 1, out
    assert out["off"] < out["total"] * 0.25, out
    # the one extreme pixel sets its block apart from the blocks around it
    assert min(abs(out["spike"] - a) for a in out["around"]) >= 10, out
    # the overlay is drawn over the image during the drag (#80deea measurement line)
    red, green, blue = out["line"]
    assert green > red + 40 and blue > red + 40, out["line"]
    # once the drag rests, the whole image again at full resolution
    page.wait_for_function(SHARP)


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
    assert out["k"] == [1, 1]
    # only the part in view: far fewer pixels than the image, and the spike among them
    c0, r0, w, h = out["rect"]
    assert w * h < SIZE * SIZE / 2
    assert c0 <= SPIKE[0] < c0 + w and r0 <= SPIKE[1] < r0 + h
    assert out["size"] == [w, h]
    # pixel for pixel what the full paint windows (inverted: MONOCHROME1)
    assert out["worst"] == 0, out
    assert min(abs(out["spike"] - a) for a in out["around"]) >= 10, out
    page.wait_for_function(SHARP)
