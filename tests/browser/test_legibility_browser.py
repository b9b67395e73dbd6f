"""Legibility on the image and radiographs done properly, in the browser: labels and
measurements that would collide are placed apart (no two label boxes of a paint
overlap), coincident outlines of two readers keep a dash pattern of their own, the
arbitration view opens framed like the workstation with its overlays, and a large
radiograph opens on its histogram window with its header's markers, a reduced
rendition first and no slice slider."""

from __future__ import annotations

import math

import pytest

import fixtures
from annotation_server.adjudication import services as adjudication
from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.imaging import pixels
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading import services as reading
from annotation_server.reading.models import ReadingTask
from tests import factories
from tests.browser.helpers import (
    SLICES,
    login,
    make_ct_case,
    open_arbitration,
    open_read,
    wait_first_image,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ORIGIN = (-89.25, -89.25, -156.875)  # fixtures.build_ct_datasets(matrix=256) geometry
PIXEL, STEP = 0.7, 1.25

# Pairs of label boxes of the last paint that overlap (CSS px boxes {x0, y0, x1, y1}).
OVERLAPS = """
(boxes) => {
  const out = [];
  for (let i = 0; i < boxes.length; i += 1)
    for (let j = i + 1; j < boxes.length; j += 1) {
      const a = boxes[i], b = boxes[j];
      if (a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1) out.push([a.text, b.text]);
    }
  return out;
}
"""


def contour(col: float, row: float, slices, radius: float) -> dict:
    """An octagon of `radius` pixels around (col, row) on each slice."""
    points = [
        [
            round(col + radius * math.cos(k * math.pi / 4), 2),
            round(row + radius * math.sin(k * math.pi / 4), 2),
        ]
        for k in range(8)
    ]
    z = sum(ORIGIN[2] + s * STEP for s in slices) / len(slices)
    return {
        "kind": "contour",
        "shapes": [{"slice_index": s, "points": points} for s in slices],
        "centre_mm": [ORIGIN[0] + col * PIXEL, ORIGIN[1] + row * PIXEL, z],
    }


def labels_of(page, controller: str) -> list[dict]:
    """The label boxes of the view's last paint."""
    return page.evaluate(f"window.{controller}.viewport.labels.boxes.map((b) => ({{...b}}))")


def repaint(page, controller: str) -> None:
    page.evaluate(f"window.{controller}.redraw()")
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_labels_of_close_findings_and_their_axes_never_overlap(
    live_server, page, project, reader_a, reader_b, request, artifacts_dir
):
    case = make_ct_case(project, reader_a, reader_b, code="CT0101", seed=7)
    task = case["a"]
    # Two nodules 1.5 px apart on slice 3 (their "#1" and "#2" would print on top
    # of each other), the first with a vertical long axis and a horizontal short
    # axis crossing at its centre (their "mm" labels too, at the fitted zoom).
    first = contour(100, 100, [3], 11)
    first["axes"] = {
        "slice_index": 3,
        "long": [[100, 89], [100, 111]],
        "short": [[95, 100], [105, 100]],
    }
    second = contour(101.5, 101, [3], 10.5)
    for geometry in (first, second):
        reading.save_finding(
            task,
            reader_a,
            finding_type="nodule",
            geometry=geometry,
            attributes=factories.complete_nodule_attributes(),
        )
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    page.evaluate("window.__ws.goToSlice(3)")
    page.wait_for_function("window.__ws.frames[3] !== null")
    # At the fitted zoom and magnified, as a reader looks at a small nodule.
    for zoom in (None, 3):
        if zoom:
            page.evaluate(
                "(z) => { const vp = window.__ws.viewport;"
                " const [x, y] = vp.toScreen([100, 100]); vp.zoomAt(z, x, y); }",
                zoom,
            )
        repaint(page, "__ws")
        boxes = labels_of(page, "__ws")
        texts = sorted(b["text"] for b in boxes)
        assert "#1" in texts and "#2" in texts, texts
        assert sum(t.endswith(" mm") for t in texts) == 2, texts
        assert page.evaluate(OVERLAPS, boxes) == []
        if zoom is None:  # the greedy placement had to move labels that collided
            assert sum(b["moved"] for b in boxes) >= 2, boxes
        width, height = page.evaluate(
            "[window.__ws.viewport.cssWidth, window.__ws.viewport.cssHeight]"
        )
        for b in boxes:
            assert min(b["x0"], b["y0"]) >= 0 and b["x1"] <= width and b["y1"] <= height, b
    page.screenshot(path=str(artifacts_dir / "legibility-workstation-labels.png"))


@pytest.fixture
def coincident(project, reader_a, reader_b, reader_c):
    """A CT whose R1 and R3 drew the same outline (the type differs: disputed), and
    R2 a spot of its own elsewhere."""
    protocol = project.protocol
    protocol.auto_accept_min_readers = 3
    protocol.drop_below_readers = 1
    protocol.save()
    datasets, _ = fixtures.build_ct_datasets(slices=SLICES, seed=11, matrix=256)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code="CT0107", series=series, state=Case.State.READING, qc_status="pass"
    )
    tasks = [
        ReadingTask.objects.create(case=case, reader=r) for r in (reader_a, reader_b, reader_c)
    ]
    marks = [
        [(contour(200, 40, [4, 5], 6), {"nodule_type": "solid"})],
        [(contour(60, 200, [8], 3), {})],
        [(contour(200, 40, [4, 5], 6), {"nodule_type": "part_solid"})],
    ]
    for task, reader, found in zip(tasks, (reader_a, reader_b, reader_c), marks, strict=True):
        for geometry, attrs in found:
            reading.save_finding(
                task,
                reader,
                finding_type="nodule",
                geometry=geometry,
                attributes=factories.complete_nodule_attributes(**attrs),
            )
        reading.save_case_label(
            task, reader, {"nodules_present": True, "image_quality": 3}, expected_version=None
        )
        task.state = ReadingTask.State.SUBMITTED
        task.save(update_fields=["state"])
    adjudication.settle_case(case.pk)
    return ArbitrationTask.objects.get(case=case)


FRAMED = """
() => {
  const arb = window.__arb, vp = arb.viewport;
  const cluster = arb.selected();
  const points = [];
  for (const m of cluster.members) {
    const shape = arb._shapeOn(m.geometry, arb.slice);
    if (shape) for (const p of shape.points) points.push(vp.toScreen(p));
  }
  const [ix0, iy0] = vp.toScreen([0, 0]);
  const [ix1, iy1] = vp.toScreen([arb.geometry.columns, arb.geometry.rows]);
  return {points, width: vp.cssWidth, height: vp.cssHeight, image: [ix0, iy0, ix1, iy1]};
}
"""


def test_arbitration_opens_framed_with_overlays_and_readers_apart(
    live_server, page, coincident, arbitrator, artifacts_dir
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server, "arbitrator", "en")
    open_arbitration(page, live_server, coincident)
    page.wait_for_function("window.__arb.selected() !== null")
    repaint(page, "__arb")

    # Framed like the workstation: the whole image fitted and centred in the canvas,
    # and the disputed cluster's marks inside it.
    framed = page.evaluate(FRAMED)
    width, height = framed["width"], framed["height"]
    x0, y0, x1, y1 = framed["image"]
    assert min(x0, y0) >= 0 and x1 <= width and y1 <= height, framed
    assert abs((x0 + x1) / 2 - width / 2) < 2 and abs((y0 + y1) / 2 - height / 2) < 2, framed
    assert framed["points"]
    for x, y in framed["points"]:
        assert 0 <= x <= width and 0 <= y <= height, (x, y, width, height)

    # The cluster R1 and R3 drew, selected as the arbitrator does.
    shared = page.evaluate(
        "window.__arb.clusters.find((c) => c.members.some((m) => m.reader === 'R1')).id"
    )
    page.click(f"[data-testid=cluster][data-cluster='{shared}']")
    page.wait_for_function("window.__arb.slice === 5")
    repaint(page, "__arb")
    framed = page.evaluate(FRAMED)
    assert len(framed["points"]) == 16
    for x, y in framed["points"]:
        assert 0 <= x <= width and 0 <= y <= height, (x, y, width, height)

    # The workstation's overlays: orientation letters, thickness, zoom.
    assert page.locator("#ws-mark-left").inner_text() == "R"
    assert page.locator("#ws-mark-right").inner_text() == "L"
    assert page.locator("#ws-mark-top").inner_text() == "A"
    assert page.locator("#ws-mark-bottom").inner_text() == "P"
    assert "Thickness" in page.locator("[data-testid=slice-info]").inner_text()
    info = page.locator("[data-testid=window-info]").inner_text()
    assert "Zoom" in info and "HU" in info

    # R1 and R3 drew the same outline: both labels shown, apart; each reader with
    # a dash pattern of its own (the legend shows it).
    boxes = labels_of(page, "__arb")
    texts = [b["text"] for b in boxes]
    assert "R1" in texts and "R3" in texts, texts
    assert page.evaluate(OVERLAPS, boxes) == []
    swatch = "(r) => document.querySelector(`[data-reader=${r}] .ws-swatch`).style.background"
    styles = {r: page.evaluate(swatch, r) for r in ("R1", "R2", "R3")}
    assert len(set(styles.values())) == 3 and all("gradient" in s for s in styles.values())
    # Hiding R3 leaves R1's outline alone on the image.
    page.uncheck("[data-testid=toggle-R3]")
    repaint(page, "__arb")
    assert "R3" not in [b["text"] for b in labels_of(page, "__arb")]
    page.check("[data-testid=toggle-R3]")

    # Zoomed in far from the cluster, selecting it again brings it back into view.
    page.evaluate("(() => { const vp = window.__arb.viewport; vp.zoomAt(6, 5, 5); })()")
    page.evaluate("window.__arb.selectCluster(window.__arb.selectedId)")
    repaint(page, "__arb")
    framed = page.evaluate(FRAMED)
    for x, y in framed["points"]:
        assert 0 <= x <= framed["width"] and 0 <= y <= framed["height"], (x, y)
    page.screenshot(path=str(artifacts_dir / "legibility-arbitration.png"))
    assert not errors, errors


SHARP = (
    "window.__ws.frames[0] !== null && window.__ws.viewport.image === window.__ws.renderer.canvas"
    " && window.__ws.renderer.canvas.width === 2048"
)


def test_radiograph_opens_on_its_histogram_window_with_markers_and_a_preview_first(
    live_server, page, project, reader_a, artifacts_dir
):
    ds, _ = fixtures.build_xr_dataset(seed=6, size=2048)
    # The detector's file window spans its whole 12-bit range: washed out.
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (2048.0, 4096.0)
    expected = pixels.decode_frame(ds).header["default_window"]
    series = index_datasets(project, [ds]).series[0]
    case = Case.objects.create(
        project=project, code="DX0107", series=series, state=Case.State.READING, qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    login(page, live_server, "reader_a", "en")
    # A slow link (about 40 Mbit/s): the 8 MB frame takes a while, its preview not.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 5, "downloadThroughput": 5_000_000, "uploadThroughput": -1},
    )
    page.goto(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page, timeout=30_000)
    assert page.evaluate("window.__ws.firstImageFrom") == "preview"
    assert page.evaluate("window.__ws.frames[0]") is None  # the full frame is still coming
    # The preview is drawn at the full image's size and place.
    assert page.evaluate("[window.__ws.geometry.columns, window.__ws.geometry.rows]") == [
        2048,
        2048,
    ]
    page.wait_for_function(SHARP, timeout=60_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )

    # The default window: the histogram's, not the file's full range.
    window = page.evaluate("window.__ws.window")
    assert window["width"] == pytest.approx(expected["width"], abs=0.1)
    assert window["center"] == pytest.approx(expected["center"], abs=0.1)
    assert window["width"] < 0.8 * 4096
    auto = page.locator("[data-preset=file]")
    assert auto.inner_text() == "Auto" and "on" in (auto.get_attribute("class") or "")

    # Markers from the header: PA view, the patient's left on the right edge, feet below.
    assert page.locator("[data-testid=view-marker]").inner_text() == "PA"
    assert page.locator("#ws-mark-right").inner_text() == "L"
    assert page.locator("#ws-mark-left").inner_text() == "R"
    assert page.locator("#ws-mark-bottom").inner_text() == "F"
    assert page.locator("#ws-mark-top").inner_text() == "H"
    # One image: no slice slider, no "Slice 1 / 1".
    assert not page.locator("[data-testid=slice-slider]").is_visible()
    assert "Slice" not in page.locator("[data-testid=slice-info]").inner_text()
    page.screenshot(path=str(artifacts_dir / "legibility-radiograph.png"))
