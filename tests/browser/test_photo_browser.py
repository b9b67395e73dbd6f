"""A fundus photograph (RGB, Ophthalmic Photography) on the reading workstation:
painted at full resolution in its own colours, red-free shows the green channel as
grey, brightness/contrast dragged like window/level changes the pixels as lut.js
photoLevels says, the eye (OD/OS) is marked and no window/HU text is shown; a CT
case still paints windowed grey as before."""

from __future__ import annotations

import numpy as np
import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import ReadingTask
from tests.browser.helpers import login, wait_first_image
from tests.imaging.rgb_photos import BLOCKS, block_photo, photo_dataset

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROWS, COLUMNS = 480, 640

# The screen canvas's colour at image points (device pixels under vp.toScreen).
SCREEN_AT = """
(points) => {
  const vp = window.__ws.viewport;
  return points.map(([c, r]) => {
    const [x, y] = vp.toScreen([c, r]);
    const d = vp.ctx.getImageData(Math.round(x * vp.dpr), Math.round(y * vp.dpr), 1, 1).data;
    return [d[0], d[1], d[2]];
  });
}
"""

# The renderer's last paint is the one described (key) and is on the screen.
PAINTED = """
(tail) => {
  const ws = window.__ws;
  const shown = ws.viewport.image === ws.renderer.canvas && !ws.needsPaint;
  return shown && ws.renderer.key.endsWith(tail);
}
"""

# The paint of the current window (brightness/contrast), gamma 1, colour, is on the screen.
ADJUSTED = """
(() => {
  const ws = window.__ws;
  const key = [ws.slice, ws.window.center, ws.window.width, false, 1, false].join("|");
  return ws.viewport.image === ws.renderer.canvas && !ws.needsPaint && ws.renderer.key === key;
})()
"""

CT_PAINTED = """
(() => {
  const ws = window.__ws;
  return ws.viewport.image === ws.renderer.canvas && !ws.needsPaint;
})()
"""


def _photo_task(project, reader) -> tuple[ReadingTask, np.ndarray]:
    photo = block_photo(ROWS, COLUMNS, seed=11)
    series = index_datasets(project, [photo_dataset(photo, laterality="OD", planar=1)]).series[0]
    case = Case.objects.create(
        project=project, code="OP0001", series=series, state=Case.State.READING, qc_status="pass"
    )
    return ReadingTask.objects.create(case=case, reader=reader), photo


def _block_centres() -> list[tuple[int, int]]:
    """Centres of the blocks (all but the bottom row, where the scale bar may be)."""
    return [
        (int((bx + 0.5) * COLUMNS / BLOCKS), int((by + 0.5) * ROWS / BLOCKS))
        for by in range(BLOCKS - 1)
        for bx in range(BLOCKS)
    ]


def _levels(v: np.ndarray, center: float, width: float, gamma: float = 1.0) -> np.ndarray:
    """lut.js photoLevels, written again."""
    t = np.clip((v.astype(float) - (center - width / 2)) / width, 0, 1) ** (1 / gamma)
    return np.floor(t * 255 + 0.5)


def test_photo_paints_its_colours_red_free_and_brightness_contrast(
    live_server, page, project, reader_a
):
    task, photo = _photo_task(project, reader_a)
    login(page, live_server, "reader_a", "en")
    page.goto(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page, timeout=30_000)
    page.wait_for_function(PAINTED, arg="|1|false")
    assert page.evaluate("window.__ws.rgb") is True
    # one photograph: the progress line speaks of an image, not of "1 slices"
    page.wait_for_function("document.querySelector('.ws-load').dataset.state === 'done'")
    assert page.locator("[data-testid=prefetch]").inner_text() == "Image loaded"
    # fitted, at full resolution: the renderer's canvas is the whole photo
    assert page.evaluate(
        "[window.__ws.renderer.canvas.width, window.__ws.renderer.canvas.height]"
    ) == [COLUMNS, ROWS]
    points = _block_centres()
    stored = np.array([photo[r, c] for c, r in points], dtype=int)

    shown = np.array(page.evaluate(SCREEN_AT, [list(p) for p in points]))
    assert np.abs(shown - stored).max() <= 1, (shown - stored).tolist()

    # the eye from ImageLaterality, the photo's adjustments and no window/HU text
    assert page.text_content("#ws-mark-view") == "OD"
    corner = page.text_content("#ws-tr")
    assert "Brightness" in corner and "HU" not in corner and "W " not in corner
    assert page.locator("#ws-presets .ws-preset[data-preset]").count() == 0

    # red-free by its key: the green channel as grey
    page.keyboard.press("Shift+G")
    page.wait_for_function(PAINTED, arg="|1|true")
    grey = np.array(page.evaluate(SCREEN_AT, [list(p) for p in points]))
    assert np.abs(grey[:, 0] - stored[:, 1]).max() <= 1
    assert (grey[:, 0] == grey[:, 1]).all() and (grey[:, 1] == grey[:, 2]).all()
    assert page.evaluate("window.__ws.tool") == "select"  # not the polygon tool (G)
    # and back to colour by its button
    page.click("[data-testid=red-free]")
    page.wait_for_function(PAINTED, arg="|1|false")

    # brightness/contrast: a drag with the window tool
    page.keyboard.press("w")
    box = page.locator("#ws-canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 60, y - 40, steps=6)
    page.mouse.up()
    window = page.evaluate("window.__ws.window")
    assert window != {"center": 127.5, "width": 255}
    page.wait_for_function(ADJUSTED)
    adjusted = np.array(page.evaluate(SCREEN_AT, [list(p) for p in points]))
    expected = _levels(stored, window["center"], window["width"])
    assert np.abs(adjusted - expected).max() <= 1, window
    assert np.abs(adjusted - stored).max() >= 20  # the pixels did change
    # the corner line names the contrast with one percent sign (Django's interpolate()
    # does not unescape a "%%")
    contrast = round(255 / window["width"] * 100)
    corner = page.text_content("#ws-tr")
    assert f"contrast {contrast}%" in corner and "%%" not in corner, corner

    # reset: the photo as stored again
    page.keyboard.press("r")
    page.wait_for_function(PAINTED, arg="|127.5|255|false|1|false")
    again = np.array(page.evaluate(SCREEN_AT, [list(p) for p in points]))
    assert np.abs(again - stored).max() <= 1


CT_GREY = """
() => {
  const ws = window.__ws;
  const frame = ws.frames[ws.slice];
  const { columns, rows } = frame.header;
  const { center, width } = ws.window;
  const win = (x) => {
    const lo = center - 0.5 - (width - 1) / 2;
    const hi = center - 0.5 + (width - 1) / 2;
    if (x <= lo) return 0;
    if (x > hi) return 255;
    return Math.round(((x - (center - 0.5)) / (width - 1) + 0.5) * 255);
  };
  const data = ws.renderer.ctx.getImageData(0, 0, columns, rows).data;
  let worst = 0;
  let colour = 0;
  for (let i = 0; i < columns * rows; i += 97) {
    worst = Math.max(worst, Math.abs(data[4 * i] - win(frame.values[i])));
    if (data[4 * i] !== data[4 * i + 1] || data[4 * i + 1] !== data[4 * i + 2]) colour += 1;
  }
  return { worst, colour, rgb: Boolean(ws.rgb), tr: document.getElementById("ws-tr").textContent,
           bar: document.querySelectorAll("#ws-presets .ws-preset[data-preset]").length };
}
"""


def test_ct_case_still_paints_windowed_grey(live_server, page, project, reader_a):
    datasets, _ = fixtures.build_ct_datasets(slices=3, seed=2)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code="CT0001", series=series, state=Case.State.READING, qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    login(page, live_server, "reader_a", "en")
    page.goto(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page, timeout=30_000)
    page.wait_for_function(CT_PAINTED)
    out = page.evaluate(CT_GREY)
    assert out["rgb"] is False and out["colour"] == 0
    assert out["worst"] == 0
    assert "HU" in out["tr"] and "Brightness" not in out["tr"]
    assert out["bar"] >= 2  # the file's window and the CT presets
    assert page.locator("[data-testid=red-free]").count() == 0


# The other eye's pane: its colour at image points (device pixels of its fitted rect).
FELLOW_AT = """
(points) => {
  const f = window.__ws.fellow;
  const [x0, y0, w, h] = f.rect;
  const { columns, rows } = f.frame.header;
  const ctx = f.canvas.getContext("2d");
  return points.map(([c, r]) => {
    const x = Math.round(x0 + (c * w) / columns);
    const y = Math.round(y0 + (r * h) / rows);
    const d = ctx.getImageData(x, y, 1, 1).data;
    return [d[0], d[1], d[2]];
  });
}
"""


def test_other_eye_of_the_visit_is_shown_beside_for_looking(live_server, page, project, reader_a):
    od = block_photo(ROWS, COLUMNS, seed=21)
    os_ = block_photo(ROWS, COLUMNS, seed=22)
    od_ds = photo_dataset(od, laterality="OD")
    os_ds = photo_dataset(os_, laterality="OS", study_uid=str(od_ds.StudyInstanceUID))
    result = index_datasets(project, [od_ds, os_ds])
    by_eye = {s.instances.get().sop_instance_uid: s for s in result.series}
    series = by_eye[str(os_ds.SOPInstanceUID)]  # the case reads the left eye
    case = Case.objects.create(
        project=project, code="OP0002", series=series, state=Case.State.READING, qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    login(page, live_server, "reader_a", "en")
    page.goto(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page, timeout=30_000)
    page.wait_for_function("window.__ws.fellow && window.__ws.fellow.key !== ''", timeout=30_000)
    assert page.text_content("#ws-mark-view") == "OS"
    assert page.text_content("[data-testid=fellow-label]").startswith("OD")
    # OD on the left of the screen, the case's OS (the canvas drawn on) on the right
    fellow_box = page.locator("[data-testid=fellow]").bounding_box()
    main_box = page.locator("#ws-canvas").bounding_box()
    assert fellow_box["x"] + fellow_box["width"] <= main_box["x"] + 1
    points = _block_centres()
    shown = np.array(page.evaluate(FELLOW_AT, [list(p) for p in points]))
    assert np.abs(shown - np.array([od[r, c] for c, r in points], dtype=int)).max() <= 1
    main = np.array(page.evaluate(SCREEN_AT, [list(p) for p in points]))
    assert np.abs(main - np.array([os_[r, c] for c, r in points], dtype=int)).max() <= 1
    # the case's adjustments apply to both: red-free greys the other eye too
    page.keyboard.press("Shift+G")
    page.wait_for_function("window.__ws.fellow.key.endsWith('|true')")
    grey = np.array(page.evaluate(FELLOW_AT, [list(p) for p in points]))
    assert np.abs(grey[:, 0] - np.array([od[r, c][1] for c, r in points], dtype=int)).max() <= 1
