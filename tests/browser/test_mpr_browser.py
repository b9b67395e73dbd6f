"""Multiplanar views of a CT volume in the reading workstation (viewer/mpr.js,
viewer/reformat.js): the crosshair finds the planted nodule at one patient
position in the axial, coronal and sagittal views (the pixels on every canvas
checked against the volume), the thick slab is the volume's maximum over the
slab in any plane and brightens the nodule and the vessels, and a box drawn on
the coronal view is stored as outlines on the axial slices it crosses."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case, LabelSchema
from annotation_server.reading.models import Finding, ReadingTask
from tests import factories
from tests.browser.helpers import login, make_ct_case, open_read, seed_for, wait_saved

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SLICES = 40
MATRIX = 240
PIXEL_MM = 1.5  # in-plane
SPACING_MM = 3.0  # between slices: the volume is anisotropic (2:1)
LOADED = "document.querySelector('.ws-load').dataset.state === 'done'"

# The grey level on a canvas at css point (x, y), from the canvas's own pixels.
PIXEL = """([selector, x, y]) => {
  const canvas = document.querySelector(selector);
  const d = window.devicePixelRatio || 1;
  const p = canvas.getContext('2d').getImageData(Math.floor(x * d), Math.floor(y * d), 1, 1).data;
  return [p[0], p[1], p[2]];
}"""


def window_value(x: float, center: float, width: float) -> int:
    """lut.js windowValue (DICOM PS3.3 C.11.2.1.2 linear), 0..255."""
    w = max(width, 1)
    lo = center - 0.5 - (w - 1) / 2
    hi = center - 0.5 + (w - 1) / 2
    if x <= lo:
        return 0
    if x > hi:
        return 255
    return math.floor(((x - (center - 0.5)) / (w - 1) + 0.5) * 255 + 0.5)


@pytest.fixture
def volume_case(request, project, reader_a, reader_b):
    """A 40-slice CT of 240 x 240 voxels of 1.5 x 1.5 x 3 mm with three nodules, in
    reading; the volume in HU as numpy [slice, row, column] and the fixture's truth."""
    definition = copy.deepcopy(factories.schema("lung-nodule-ct").definition)
    definition["finding_types"][0]["geometry"] = ["contour", "ellipse", "point", "box", "polygon"]
    project.label_schema = LabelSchema.objects.create(
        key="lung-nodule-ct-mpr", version=1, name="Lung nodule (MPR test)", definition=definition
    )
    project.save()
    datasets, truth = fixtures.build_ct_datasets(
        slices=SLICES,
        seed=seed_for(request),
        matrix=MATRIX,
        pixel_spacing=PIXEL_MM,
        spacing=SPACING_MM,
        nodules=3,
    )
    ordered = sorted(datasets, key=lambda ds: int(ds.InstanceNumber))
    volume = np.stack(
        [
            ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
            for ds in ordered
        ]
    ).astype(np.int16)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code="CT-MPR", series=series, state=Case.State.READING, qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    return {"task": task, "volume": volume, "truth": truth}


def open_volume(page, live_server, task) -> None:
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    page.wait_for_function(LOADED, timeout=30_000)


def solid_nodule(truth) -> dict:
    return max(
        (n for n in truth["nodules"] if n["type"] == "solid"), key=lambda n: n["diameter_mm"]
    )


def pane_to_page(page, role: str, point) -> tuple[float, float]:
    box = page.locator(f"[data-testid=viewer-{role}]").bounding_box()
    x, y = page.evaluate(f"window.__ws.mpr.panes[{role!r}].viewport.toScreen({list(point)})")
    return box["x"] + x, box["y"] + y


def main_to_page(page, point) -> tuple[float, float]:
    box = page.locator("[data-testid=viewer]").bounding_box()
    x, y = page.evaluate(f"window.__ws.viewport.toScreen({list(point)})")
    return box["x"] + x, box["y"] + y


def settle(page) -> None:
    """Two animation frames: a layout change has refitted its views and painted."""
    page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def set_range(page, selector: str, value: int) -> None:
    page.evaluate(
        "([s, v]) => { const el = document.querySelector(s); el.value = String(v);"
        " el.dispatchEvent(new Event('input', {bubbles: true})); }",
        [selector, value],
    )


def probe(page) -> dict:
    return {v["role"]: v for v in page.evaluate("window.__ws.mpr.probe()")}


def test_crosshair_finds_the_nodule_at_one_patient_position_in_three_planes(
    live_server, page, volume_case, artifacts_dir
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    volume, truth = volume_case["volume"], volume_case["truth"]
    open_volume(page, live_server, volume_case["task"])
    # The default stays one axial view; O shows axial, coronal and sagittal side by side.
    assert page.locator("[data-testid=mpr-bar]").is_visible()
    assert page.locator("[data-testid=viewer-coronal]").is_hidden()
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("o")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '1x3'"
    )
    settle(page)
    for role in ("coronal", "sagittal"):
        assert page.locator(f"[data-testid=viewer-{role}]").is_visible()
    assert page.locator("[data-testid=viewer-slab]").is_hidden()

    # Orientation letters from ImageOrientationPatient: the patient's left on the
    # right, the head up; anterior on the left of the sagittal view.
    for role, letters in {"coronal": "RLHF", "sagittal": "APHF"}.items():
        marks = page.locator(f"[data-testid=mpr-{role}] .ws-mark")
        assert "".join(marks.nth(i).inner_text() for i in range(4)) == letters
    # Millimetres, not voxels: a coronal voxel is 1.5 mm wide and 3 mm tall on screen.
    size = page.evaluate(
        "(() => { const vp = window.__ws.mpr.panes.coronal.viewport;"
        " const a = vp.toScreen([0, 0]), b = vp.toScreen([1, 1]);"
        " return [b[0] - a[0], b[1] - a[1]]; })()"
    )
    assert size[1] / size[0] == pytest.approx(SPACING_MM / PIXEL_MM, rel=1e-6)

    # The crosshair tool: a click on the nodule in the axial view moves the others.
    nodule = solid_nodule(truth)
    col, row, k = nodule["centre_voxel"]
    page.evaluate(f"window.__ws.goToSlice({k})")
    page.keyboard.press("x")
    page.mouse.click(*main_to_page(page, (col + 0.5, row + 0.5)))
    page.wait_for_function(f"window.__ws.mpr.panes.coronal.index === {row}")
    settle(page)
    views = probe(page)
    assert set(views) == {"main", "coronal", "sagittal"}
    assert views["sagittal"]["index"] == col
    expected_hu = int(volume[k, row, col])
    assert expected_hu > -200, "the crosshair sits in the solid nodule"
    selector = {
        "main": "[data-testid=viewer]",
        "coronal": "[data-testid=viewer-coronal]",
        "sagittal": "[data-testid=viewer-sagittal]",
    }
    for role, view in views.items():
        assert [math.floor(v) for v in view["volume"]] == [col, row, k], role
        # the same patient position (mm) in every plane, that of the nodule's voxel
        assert view["mm"] == pytest.approx(views["main"]["mm"], abs=1e-6), role
        assert view["mm"] == pytest.approx(
            [c + s for c, s in zip(nodule["centre_mm"], (0.75, 0.75, 0.0), strict=True)], abs=0.01
        )
        assert view["value"] == expected_hu, role
        # and the canvas shows that voxel, windowed, under the crosshair's centre
        window = page.evaluate(
            "window.__ws.window" if role == "main" else f"window.__ws.mpr.panes[{role!r}].window"
        )
        grey = page.evaluate(PIXEL, [selector[role], *view["screen"]])
        want = window_value(expected_hu, window["center"], window["width"])
        assert abs(grey[0] - want) <= 1, (role, grey, want)
    page.screenshot(path=str(artifacts_dir / "mpr-crosshair-1x3.png"))

    # A click in the coronal view moves the axial slice and the sagittal plane.
    col2 = col - 12 if col >= 12 else col + 12
    k2 = k - 5 if k >= 5 else k + 5
    page.mouse.click(*pane_to_page(page, "coronal", (col2 + 0.5, SLICES - (k2 + 0.5))))
    page.wait_for_function(f"window.__ws.slice === {k2}")
    views = probe(page)
    assert views["sagittal"]["index"] == col2
    assert views["coronal"]["index"] == row
    for view in views.values():
        assert [math.floor(v) for v in view["volume"]] == [col2, row, k2]
        assert view["value"] == int(volume[k2, row, col2])
    # ... and a click in the sagittal view the coronal plane.
    row2 = row - 20 if row >= 20 else row + 20
    page.mouse.click(*pane_to_page(page, "sagittal", (row2 + 0.5, SLICES - (k + 0.5))))
    page.wait_for_function(
        f"window.__ws.slice === {k} && window.__ws.mpr.panes.coronal.index === {row2}"
    )

    # The 2 x 2 layout adds the axial slab; a double click enlarges one view.
    page.keyboard.press("o")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '2x2'"
    )
    assert page.locator("[data-testid=viewer-slab]").is_visible()
    page.keyboard.press("v")
    page.dblclick("[data-testid=viewer-sagittal]")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '1x1'"
    )
    settle(page)
    assert page.locator("[data-testid=viewer-sagittal]").is_visible()
    assert page.locator("[data-testid=viewer]").is_hidden()
    page.screenshot(path=str(artifacts_dir / "mpr-sagittal-1x1.png"))

    # Cine plays through the active view's slices, K again stops it.
    before = page.evaluate("window.__ws.mpr.panes.sagittal.index")
    page.keyboard.press("k")
    page.wait_for_function(f"window.__ws.mpr.panes.sagittal.index !== {before}")
    page.keyboard.press("k")
    assert page.locator("[data-testid=mpr-bar]").get_attribute("data-cine") == "stopped"
    assert errors == []


def test_thick_slab_is_the_maximum_over_the_slab_and_brightens_nodule_and_vessels(
    live_server, page, volume_case, artifacts_dir
):
    volume, truth = volume_case["volume"], volume_case["truth"]
    open_volume(page, live_server, volume_case["task"])
    nodule = solid_nodule(truth)
    col, row, k_nodule = nodule["centre_voxel"]
    # A slice 2 slices (6 mm) off the nodule's centre: the nodule looks smaller there.
    k = k_nodule + 2 if k_nodule + 2 < SLICES else k_nodule - 2
    page.evaluate(f"window.__ws.goToSlice({k})")
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('[data-testid=mpr-bar]').dataset.slab === 'mip'")
    set_range(page, "[data-testid=slab-mm]", 15)
    page.wait_for_function("window.__ws.mpr.slab.mm === 15")
    page.wait_for_function(
        "document.querySelector('[data-testid=slice-info]').textContent.includes('MIP 15 mm')"
    )
    # 15 mm at 3 mm spacing: five slices centred on k.
    t0, t1 = k - 2, k + 2
    shown = page.evaluate("Array.from(window.__ws.slabFrame().values)")
    mip = volume[t0 : t1 + 1].max(axis=0)
    assert np.array_equal(np.array(shown, dtype=np.int16).reshape(MATRIX, MATRIX), mip)
    single = volume[k]
    # The nodule: more of it above -300 HU within 15 mm of its centre.
    rr, cc = np.mgrid[0:MATRIX, 0:MATRIX]
    near = (rr - row) ** 2 + (cc - col) ** 2 <= (15 / PIXEL_MM) ** 2
    assert (mip[near] > -300).sum() > 1.2 * (single[near] > -300).sum()
    # The vessels: within the lung (below -750 HU through the whole slab) the slab
    # shows several times the vessel voxels (above -500 HU) of the single slice.
    lung = volume[t0 : t1 + 1].min(axis=0) < -750
    vessels_mip = ((mip > -500) & lung).sum()
    vessels_single = ((single > -500) & lung).sum()
    assert vessels_mip > 2 * vessels_single, (vessels_mip, vessels_single)
    assert mip.mean() > single.mean()
    # The canvas shows the slab: at the nodule's centre its windowed maximum.
    settle(page)
    window = page.evaluate("window.__ws.window")
    x, y = page.evaluate(f"window.__ws.viewport.toScreen([{col + 0.5}, {row + 0.5}])")
    grey = page.evaluate(PIXEL, ["[data-testid=viewer]", x, y])
    assert abs(grey[0] - window_value(int(mip[row, col]), window["center"], window["width"])) <= 1
    page.screenshot(path=str(artifacts_dir / "mpr-mip-axial.png"))

    # Any plane: the coronal view's slab is the maximum over 15 mm of rows (10 rows
    # of 1.5 mm), the head at the top.
    page.keyboard.press("o")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '1x3'"
    )
    settle(page)
    page.keyboard.press("x")
    page.mouse.click(*main_to_page(page, (col + 0.5, row + 0.5)))
    page.wait_for_function(f"window.__ws.mpr.panes.coronal.index === {row}")
    coronal = page.evaluate("Array.from(window.__ws.mpr.panes.coronal.currentFrame().values)")
    r0, r1 = page.evaluate("window.__ws.mpr.panes.coronal.frame.range")
    assert r1 - r0 + 1 == 10 and r0 <= row <= r1
    expected = volume[:, r0 : r1 + 1, :].max(axis=1)[::-1]
    assert np.array_equal(np.array(coronal, dtype=np.int16).reshape(SLICES, MATRIX), expected)
    # MinIP darkens instead (Shift + S cycles the mode).
    page.keyboard.press("Shift+S")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.slab === 'minip'"
    )
    minip = np.array(page.evaluate("Array.from(window.__ws.slabFrame().values)"), dtype=np.int16)
    assert np.array_equal(minip.reshape(MATRIX, MATRIX), volume[t0 : t1 + 1].min(axis=0))
    page.screenshot(path=str(artifacts_dir / "mpr-minip-1x3.png"))
    # S again: single slices.
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('[data-testid=mpr-bar]').dataset.slab === 'off'")
    assert page.evaluate("window.__ws.slabFrame()") is None


# Scroll a slab through every index of each plane (forward, back, forward in steps
# of one, then jumps), each result passed on as the next `reuse` as the views do,
# and compare every one with the same slab computed afresh (reuse null).
SLIDE_VS_FRESH = """async () => {
  const R = await import('/static/refset/viewer/reformat.js');
  const ws = window.__ws;
  const vol = ws.mpr.volume;
  const out = {mismatches: [], steps: 0, slid: 0};
  for (const plane of Object.values(ws.mpr.planes)) {
    const order = [];
    for (let i = 0; i < plane.depth; i += 1) order.push(i);
    for (let i = plane.depth - 1; i >= 0; i -= 1) order.push(i);
    order.push(0, 1, 2, 9, 10, 11, 4, 3, 3, 2);
    // steps of two and three between paints (a fast wheel): walked where the slab is thick enough
    order.push(0, 2, 4, 7, 10, 13, 11, 8, 6, 3, 0);
    for (const mode of ['mip', 'minip', 'avg']) {
      for (const mm of [9, 15, 20]) {
        let last = null;
        for (const i of order) {
          const got = R.reformat(vol, ws.frames, plane, i, {mode, mm}, last);
          const fresh = R.reformat(vol, ws.frames, plane, i, {mode, mm}, null);
          out.steps += 1;
          if (got.sliding.slid) out.slid += 1;
          const a = got.values, b = fresh.values;
          let same = a.length === b.length;
          for (let p = 0; same && p < a.length; p += 1) same = a[p] === b[p];
          if (!same) out.mismatches.push([plane.name, mode, mm, i]);
          last = got;
        }
      }
    }
  }
  return out;
}"""


def test_a_slab_scrolled_step_by_step_equals_the_slab_computed_afresh(
    live_server, page, volume_case
):
    volume = volume_case["volume"]
    open_volume(page, live_server, volume_case["task"])
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("o")  # 1 x 3: the volume and its planes are set up
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '1x3'"
    )
    result = page.evaluate(SLIDE_VS_FRESH)
    assert result["mismatches"] == []
    # The incremental path did run: two of the three planes slide (a plane across
    # the columns is always computed afresh), all but the first step of a run.
    assert result["slid"] > result["steps"] / 3, result

    # Through the page: an axial MIP scrolled slice by slice is slid, and is the
    # volume's maximum over the slab (numpy).
    page.evaluate("window.__ws.mpr.setLayout('1x1', window.__ws.mpr.native)")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '1x1'"
    )
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('[data-testid=mpr-bar]').dataset.slab === 'mip'")
    set_range(page, "[data-testid=slab-mm]", 15)
    page.wait_for_function("window.__ws.mpr.slab.mm === 15")
    for k in range(3, 20):
        page.evaluate(f"window.__ws.goToSlice({k})")
        settle(page)
    frame = page.evaluate(
        "(() => { const f = window.__ws.slabFrame();"
        " return {values: Array.from(f.values), range: f.range, slid: f.sliding.slid}; })()"
    )
    t0, t1 = frame["range"]
    assert (t0, t1) == (17, 21)  # 15 mm at 3 mm: five slices centred on 19
    assert frame["slid"] is True
    shown = np.array(frame["values"], dtype=np.int16).reshape(MATRIX, MATRIX)
    assert np.array_equal(shown, volume[t0 : t1 + 1].max(axis=0))

    # The mouse wheel, two slices a notch (the view moves more than one slice
    # between two paints): the main view's slab is still slid, and still exact.
    before = page.evaluate("({...window.__ws.mpr.slabCounts})")
    box = page.locator("[data-testid=viewer]").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    for _ in range(4):
        page.mouse.wheel(0, 200)
        page.wait_for_function("!window.__ws.needsPaint")
        settle(page)
    assert page.evaluate("window.__ws.slice") == 27
    after = page.evaluate("({...window.__ws.mpr.slabCounts})")
    assert (after["slid"] - before["slid"], after["fresh"] - before["fresh"]) == (4, 0)
    frame = page.evaluate(
        "(() => { const f = window.__ws.slabFrame();"
        " return {values: Array.from(f.values), range: f.range}; })()"
    )
    t0, t1 = frame["range"]
    assert (t0, t1) == (25, 29)
    shown = np.array(frame["values"], dtype=np.int16).reshape(MATRIX, MATRIX)
    assert np.array_equal(shown, volume[t0 : t1 + 1].max(axis=0))


def test_box_drawn_on_the_coronal_view_is_stored_on_the_axial_slices_it_crosses(
    live_server, page, volume_case, artifacts_dir
):
    open_volume(page, live_server, volume_case["task"])
    page.click("[data-single=coronal]")
    page.wait_for_function(
        "!document.querySelector('[data-testid=viewer-coronal]').closest('.ws-pane').hidden"
    )
    settle(page)
    coronal_row = page.evaluate("window.__ws.mpr.panes.coronal.index")
    height = page.evaluate("window.__ws.mpr.panes.coronal.plane.height")
    # A box from column 100 to 130 and from slice 24 (top, head side) down to slice 18.
    c0, c1 = 100.0, 130.0
    top_k, bottom_k = 24.8, 18.2
    page.keyboard.press("b")
    start = pane_to_page(page, "coronal", (c0, height - top_k))
    end = pane_to_page(page, "coronal", (c1, height - bottom_k))
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=5)
    page.mouse.up()
    assert page.locator("[data-testid=finding]").count() == 1
    geometry = page.evaluate("window.__ws.store.list()[0].geometry")
    assert geometry["kind"] == "box"
    assert [s["slice_index"] for s in geometry["shapes"]] == list(range(18, 25))
    for shape in geometry["shapes"]:
        (x0, y0), (x1, y1) = shape["points"]
        assert (x0, x1) == pytest.approx((c0, c1), abs=0.02)
        assert (y0, y1) == (coronal_row, coronal_row + 1)
    assert len(geometry["centre_mm"]) == 3
    wait_saved(page)
    stored = Finding.objects.get(task=volume_case["task"])
    assert [s["slice_index"] for s in stored.geometry["shapes"]] == list(range(18, 25))
    page.screenshot(path=str(artifacts_dir / "mpr-coronal-box.png"))

    # Back to the axial view: the finding is on slices 18..24 and nowhere else.
    page.click("[data-single=axial]")
    page.wait_for_function(
        "!document.querySelector('[data-testid=viewer]').closest('.ws-pane').hidden"
    )
    settle(page)
    page.keyboard.press("v")
    uid = page.evaluate("window.__ws.store.list()[0].uid")
    for k, present in ((18, True), (21, True), (24, True), (17, False), (25, False)):
        page.evaluate(f"window.__ws.goToSlice({k})")
        x, y = page.evaluate(f"window.__ws.viewport.toScreen([{c0}, {coronal_row + 0.5}])")
        hit = page.evaluate(f"window.__ws.hitFinding([{x}, {y}])")
        assert (hit == uid) is present, k
    # ... drawn there in the finding's colour (the box's left edge).
    page.keyboard.press("Escape")  # deselected: no handles over the edge
    page.evaluate("window.__ws.goToSlice(21)")
    settle(page)
    colour = page.evaluate("window.__ws._colour(window.__ws.store.list()[0].uid)")
    want = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    x, y = page.evaluate(f"window.__ws.viewport.toScreen([{c0}, {coronal_row + 0.5}])")
    found = [tuple(page.evaluate(PIXEL, ["[data-testid=viewer]", x + dx, y])) for dx in (-1, 0, 1)]
    assert any(max(abs(a - b) for a, b in zip(p, want, strict=True)) <= 40 for p in found), found
    page.screenshot(path=str(artifacts_dir / "mpr-axial-from-coronal.png"))

    # The sagittal view through the box shows it too (one voxel thick across).
    page.click("[data-layout='1x3']")
    settle(page)
    page.keyboard.press("x")
    page.mouse.click(*main_to_page(page, (115.5, coronal_row + 0.5)))
    page.wait_for_function("window.__ws.mpr.panes.sagittal.index === 115")
    cuts = page.evaluate(
        "(() => { const p = window.__ws.mpr.panes.sagittal;"
        " return p.hitFinding(p.viewport.toScreen("
        f"[{coronal_row} + 0.5, p.plane.height - 21.5])); }})()"
    )
    assert cuts == uid


# In the page: reformat.js on synthetic volumes of other orientations. For every
# plane: its letters, the patient direction of the screen's right and down (the
# radiological convention whatever the acquisition), and the reformatted value at
# sample points against the voxel planeToVolume() names.
ORIENTATIONS = """async (url) => {
  const m = await import(url);
  const cases = {
    "axial head first": { iop: [1, 0, 0, 0, 1, 0], step: [0, 0, 2] },
    "axial slices downwards": { iop: [1, 0, 0, 0, 1, 0], step: [0, 0, -2] },
    "axial rotated 180": { iop: [-1, 0, 0, 0, -1, 0], step: [0, 0, 2] },
    "coronal acquisition": { iop: [1, 0, 0, 0, 0, -1], step: [0, 2.5, 0] },
    "sagittal acquisition": { iop: [0, 1, 0, 0, 0, -1], step: [-3, 0, 0] },
  };
  const [I, J, K] = [7, 5, 6];
  const out = {};
  for (const [name, c] of Object.entries(cases)) {
    const geometry = {
      slices: Array.from({ length: K }, (_, k) => ({ position: c.step.map((s) => 10 + s * k) })),
      columns: I, rows: J, orientation: c.iop, colSpacing: 0.5, rowSpacing: 0.8, hasSpacing: true,
    };
    const vol = m.volumeOf(geometry);
    const frames = Array.from({ length: K }, (_, k) => {
      const values = new Int16Array(I * J);
      for (let j = 0; j < J; j += 1) {
        for (let i = 0; i < I; i += 1) values[j * I + i] = 100 * k + 10 * j + i;
      }
      return { header: {}, values };
    });
    const { native, planes } = m.planesOf(vol);
    const views = {};
    for (const [plane, p] of Object.entries(planes)) {
      const index = Math.floor(p.depth / 2);
      const frame = m.reformat(vol, frames, p, index);
      let wrong = 0;
      for (let y = 0; y < p.height; y += 1) {
        for (let x = 0; x < p.width; x += 1) {
          const v = m.planeToVolume(p, index, [x + 0.5, y + 0.5]).map(Math.floor);
          if (frame.values[y * p.width + x] !== 100 * v[2] + 10 * v[1] + v[0]) wrong += 1;
        }
      }
      const at = (pt) => m.toPatient(vol, m.planeToVolume(p, index, pt));
      const o = at([1, 1]);
      const right = at([2, 1]).map((v, a) => v - o[a]);
      const down = at([1, 2]).map((v, a) => v - o[a]);
      views[plane] = { markers: p.markers, right, down, wrong, sx: p.sx, sy: p.sy };
    }
    out[name] = { native, views };
  }
  return out;
}"""


def test_planes_follow_image_orientation_patient(live_server, page):
    from django.templatetags.static import static

    page.goto(f"{live_server.url}/login/")
    result = page.evaluate(ORIENTATIONS, static("refset/viewer/reformat.js"))
    natives = {name: r["native"] for name, r in result.items()}
    assert natives == {
        "axial head first": "axial",
        "axial slices downwards": "axial",
        "axial rotated 180": "axial",
        "coronal acquisition": "coronal",
        "sagittal acquisition": "sagittal",
    }
    # Screen right and down in patient axes (LPS): the conventions of each plane.
    convention = {
        "axial": ((0, 1), (1, 1)),  # left on the right, posterior down
        "coronal": ((0, 1), (2, -1)),  # left on the right, feet down
        "sagittal": ((1, 1), (2, -1)),  # posterior on the right, feet down
    }
    letters = {"axial": "RLAP", "coronal": "RLHF", "sagittal": "APHF"}
    for name, r in result.items():
        for plane, view in r["views"].items():
            assert view["wrong"] == 0, (name, plane)
            if plane == r["native"]:
                continue  # the stored slices, shown as stored like the main view
            (ra, rs), (da, ds) = convention[plane]
            assert view["right"][ra] * rs > 0, (name, plane, view["right"])
            assert view["down"][da] * ds > 0, (name, plane, view["down"])
            marks = view["markers"]
            assert (
                marks["left"] + marks["right"] + marks["top"] + marks["bottom"] == letters[plane]
            ), (name, plane, marks)
    # Millimetres: the coronal plane of the axial volume is 0.5 mm wide, 2 mm tall.
    coronal = result["axial head first"]["views"]["coronal"]
    assert (coronal["sx"], coronal["sy"]) == (0.5, 2.0)


# -- editing from a plane, proposals in every view, remembered settings -------------

BOX = [[100.0, 110.0], [130.0, 140.0]]  # an axial box (columns, rows) on slices 18..24


def drag(page, start, end) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(*end, steps=6)
    page.mouse.up()


def shapes_of(page) -> dict:
    shapes = page.evaluate("window.__ws.store.list()[0].geometry.shapes")
    return {s["slice_index"]: s["points"] for s in shapes}


# Per reformatted plane: which axial coordinate runs across it (0: columns, 1:
# rows), the box's extent across, the pane index crossing the box's middle and
# one that misses it (centreOn points), and the plane's axes (h across, w down).
EDIT_PLANES = {
    "coronal": {"across": 0, "lo": 100, "hi": 130, "on": 125, "off": [115.5, 60.5]},
    "sagittal": {"across": 1, "lo": 110, "hi": 140, "on": 115, "off": [60.5, 125.5]},
}


def box_across(plane: dict, lo: float, hi: float) -> list[list[float]]:
    """BOX with its extent across `plane` set to lo..hi (the other axis untouched)."""
    box = [list(BOX[0]), list(BOX[1])]
    box[0][plane["across"]], box[1][plane["across"]] = lo, hi
    return box


@pytest.mark.parametrize("role", ["coronal", "sagittal"])
def test_a_box_finding_is_resized_and_moved_from_a_reformatted_view(
    live_server, page, volume_case, artifacts_dir, role
):
    """Issue 17: the frame of the selected finding on the coronal view (across: the
    columns) or the sagittal view (across: the rows, front to back; down: the
    slices, head to feet) changes its cranio-caudal extent by its top and bottom
    edges, stretches it across by its side edge and moves it by its inside: the
    stored per-slice boxes change exactly, the coordinate along the view's normal
    never."""
    plane = EDIT_PLANES[role]
    lo, hi = plane["lo"], plane["hi"]
    mid = (lo + hi) / 2
    task = volume_case["task"]
    open_volume(page, live_server, task)
    page.evaluate(
        """([box]) => window.__ws.store.create({
          finding_type: window.__ws.typeKey, attributes: {}, source: "manual",
          geometry: window.__ws._withCentre({kind: "box", centre_mm: null,
            shapes: [18, 19, 20, 21, 22, 23, 24].map((k) => ({slice_index: k, points: box}))}),
        })""",
        [BOX],
    )
    uid = page.evaluate("window.__ws.store.list()[0].uid")
    page.evaluate(f"window.__ws.select({uid!r})")
    page.click(f"[data-single={role}]")
    page.wait_for_function(
        f"!document.querySelector('[data-testid=viewer-{role}]').closest('.ws-pane').hidden"
    )
    page.evaluate("window.__ws.mpr.centreOn([115.5, 125.5])")
    page.wait_for_function(f"window.__ws.mpr.panes.{role}.index === {plane['on']}")
    settle(page)
    axes = page.evaluate(f"window.__ws.mpr.panes.{role}.plane")
    assert (axes["h"], axes["w"], axes["flipH"]) == (plane["across"], 2, False)
    height = axes["height"]
    frame = page.evaluate(f"window.__ws.mpr.panes.{role}.editFrame().points")
    assert frame == [[lo, height - 25], [hi, height - 18]]
    page.keyboard.press("v")

    def drag_on(start, end) -> None:
        drag(page, pane_to_page(page, role, start), pane_to_page(page, role, end))

    # The top edge up by three slices: slices 25..27 copy slice 24's box.
    drag_on((mid, height - 25), (mid, height - 28.1))
    got = shapes_of(page)
    assert sorted(got) == list(range(18, 28))
    assert all(points == BOX for points in got.values())
    # The bottom edge up by two: slices 18 and 19 removed.
    drag_on((mid, height - 18), (mid, height - 19.9))
    assert sorted(shapes_of(page)) == list(range(20, 28))
    # The far side edge 15 further: every box larger across, the other axis untouched.
    drag_on((hi, height - 24), (hi + 15, height - 24))
    wider = box_across(plane, lo, hi + 15)
    got = shapes_of(page)
    assert sorted(got) == list(range(20, 28))
    assert all(points == wider for points in got.values())
    # Moved from inside: 10 across and two slices down (towards the feet).
    drag_on((lo + 20, height - 23.5), (lo + 30, height - 21.5))
    moved = box_across(plane, lo + 10, hi + 25)
    got = shapes_of(page)
    assert sorted(got) == list(range(18, 26))
    assert all(points == moved for points in got.values())
    settle(page)
    page.screenshot(path=str(artifacts_dir / f"mpr-{role}-frame.png"))
    wait_saved(page)
    stored = Finding.objects.get(task=task).geometry
    assert [s["slice_index"] for s in stored["shapes"]] == list(range(18, 26))
    assert all(s["points"] == moved for s in stored["shapes"])
    # One drag is one undo step: Ctrl + Z puts the box back before the move.
    page.keyboard.press("Control+z")
    got = shapes_of(page)
    assert sorted(got) == list(range(20, 28))
    assert all(points == wider for points in got.values())
    # A plane that does not cross the finding offers no frame to drag.
    page.evaluate(f"window.__ws.mpr.centreOn({plane['off']})")
    page.wait_for_function(f"window.__ws.mpr.panes.{role}.index === 60")
    assert page.evaluate(f"window.__ws.mpr.panes.{role}.editFrame()") is None


def colour_hits(page, selector: str, colour: str, points, tolerance: int = 60) -> int:
    """How many of the css `points` on a canvas (each with the pixel above and
    below) show `colour` (#rrggbb) within `tolerance` per channel."""
    want = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    hits = 0
    for x, y in points:
        for dy in (-1, 0, 1):
            got = page.evaluate(PIXEL, [selector, x, y + dy])
            if max(abs(a - b) for a, b in zip(got, want, strict=True)) <= tolerance:
                hits += 1
                break
    return hits


def test_model_proposals_show_in_every_view_they_cross(live_server, page, volume_case):
    """Issue 17: a proposal is drawn where it crosses the coronal and sagittal views
    (the rows of its slices), not only on the axial slice; the confidence filter
    hides it there too."""
    from annotation_server.projects.models import ReadingProtocol
    from annotation_server.reading.models import AssistModelVersion, Proposal

    task = volume_case["task"]
    ReadingProtocol.objects.filter(project=task.case.project).update(
        prelabel_visibility=ReadingProtocol.PrelabelVisibility.SHOWN, prelabel_min_confidence=0.3
    )
    model = AssistModelVersion.objects.create(
        name="lung-nodule",
        version="1.0.0",
        task="detection",
        card={"name": "lung-nodule"},
        weights_sha256="ab" * 32,
        source=AssistModelVersion.Source.BUILTIN,
    )
    square = [[60, 60], [90, 60], [90, 90], [60, 90]]
    proposal = Proposal.objects.create(
        case=task.case,
        series=task.case.series,
        model_version=model,
        finding_type="nodule",
        geometry={
            "kind": "contour",
            "shapes": [{"slice_index": k, "points": square} for k in range(18, 23)],
        },
        attributes=factories.complete_nodule_attributes(),
        score=0.8,
        threshold=0.3,
    )
    open_volume(page, live_server, task)
    page.wait_for_function("window.__ws.store.proposals.length === 1")
    page.click("[data-layout='1x3']")
    page.evaluate("window.__ws.mpr.centreOn([75.5, 75.5])")
    page.wait_for_function(
        "window.__ws.mpr.panes.coronal.index === 75 && window.__ws.mpr.panes.sagittal.index === 75"
    )
    settle(page)
    name = f"proposal:{proposal.pk}"
    height = page.evaluate("window.__ws.mpr.panes.coronal.plane.height")
    for role in ("coronal", "sagittal"):
        drawn = page.evaluate(f"window.__ws.mpr.panes.{role}.drawn")
        drawn = [d for d in drawn if d["name"] == name]
        assert len(drawn) == 1, role
        xs = [p[0] for p in drawn[0]["points"]]
        ys = [p[1] for p in drawn[0]["points"]]
        # across: columns (coronal) or rows (sagittal) 60..90; down: slices 18..22, head up
        assert (min(xs), max(xs)) == pytest.approx((60, 90), abs=1e-6), role
        assert (min(ys), max(ys)) == pytest.approx((height - 23, height - 18), abs=1e-6), role
    # On the canvas: the proposal's colour along its cut's bottom edge (the feet side).
    selector = "[data-testid=viewer-coronal]"
    edge = page.evaluate(
        f"[62, 66, 70, 74, 78, 82, 86].map((c) => window.__ws.mpr.panes.coronal.viewport"
        f".toScreen([c, {height - 18}]))"
    )
    assert colour_hits(page, selector, "#00e5ff", edge) >= 3
    # Above its confidence: gone from every view.
    set_range(page, "[data-testid=proposal-min]", 0.9)
    settle(page)
    for role in ("coronal", "sagittal"):
        names = [d["name"] for d in page.evaluate(f"window.__ws.mpr.panes.{role}.drawn")]
        assert name not in names, role
    assert colour_hits(page, selector, "#00e5ff", edge) == 0
    # A plane that misses it shows nothing of it.
    set_range(page, "[data-testid=proposal-min]", 0.3)
    page.evaluate("window.__ws.mpr.centreOn([75.5, 120.5])")
    page.wait_for_function("window.__ws.mpr.panes.coronal.index === 120")
    settle(page)
    assert name not in [d["name"] for d in page.evaluate("window.__ws.mpr.panes.coronal.drawn")]
    assert name in [d["name"] for d in page.evaluate("window.__ws.mpr.panes.sagittal.drawn")]


def test_layout_plane_and_slab_are_remembered_per_user_across_cases(
    request, live_server, page, volume_case, project, reader_a, reader_b
):
    """Issue 17: the layout, the slab and the reference lines chosen on one case are
    there on the next case for the same reader, and not for another reader."""
    small = make_ct_case(project, reader_a, reader_b, code="CT-SMALL", seed=seed_for(request) + 1)
    first, other = small["a"], small["b"]
    second = volume_case["task"]
    open_volume(page, live_server, first)
    page.click("[data-layout='2x2']")
    page.select_option("[data-testid=slab-mode]", "minip")
    page.click("[data-testid=slab-toggle]")
    set_range(page, "[data-testid=slab-mm]", 14)
    page.uncheck("[data-testid=reflines]")
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.slab === 'minip'"
        " && window.__ws.mpr.slab.mm === 14"
    )

    open_read(page, live_server, second)
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '2x2'"
    )
    settle(page)
    assert page.locator("[data-testid=case-code]").inner_text() == "CT-MPR"
    for role in ("coronal", "sagittal", "slab"):
        assert page.locator(f"[data-testid=viewer-{role}]").is_visible(), role
    bar = page.locator("[data-testid=mpr-bar]")
    assert bar.get_attribute("data-slab") == "minip"
    assert page.locator("[data-testid=slab-mm]").input_value() == "14"
    assert not page.locator("[data-testid=reflines]").is_checked()
    assert "MinIP 14 mm" in page.locator("[data-testid=slice-info]").inner_text()
    # The axial slab is the minimum over 14 mm (5 slices of 3 mm) around the slice.
    k = page.evaluate("window.__ws.slice")
    shown = np.array(page.evaluate("Array.from(window.__ws.slabFrame().values)"), dtype=np.int16)
    t0, t1 = max(0, k - 2), min(SLICES - 1, k + 2)
    assert np.array_equal(
        shown.reshape(MATRIX, MATRIX), volume_case["volume"][t0 : t1 + 1].min(axis=0)
    )
    # A single plane is remembered too.
    page.click("[data-single=sagittal]")
    open_read(page, live_server, first)
    page.wait_for_function(
        "document.querySelector('[data-testid=mpr-bar]').dataset.layout === '1x1'"
        " && !document.querySelector('[data-testid=viewer-sagittal]').closest('.ws-pane').hidden"
    )
    assert page.locator("[data-testid=viewer]").is_hidden()

    # Another reader on the same browser starts from the defaults.
    page.click("form[action$='/logout/'] button")
    page.wait_for_url(f"{live_server.url}/login/")
    login(page, live_server, "reader_b", "en")
    open_read(page, live_server, other)
    page.wait_for_function(LOADED, timeout=30_000)
    settle(page)
    assert bar.get_attribute("data-layout") == "1x1"
    assert bar.get_attribute("data-slab") == "off"
    assert page.locator("[data-testid=viewer]").is_visible()
    assert page.locator("[data-testid=reflines]").is_checked()
