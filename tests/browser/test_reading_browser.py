"""A reader reads a CT case in the workstation; a second reader stays blind."""

from __future__ import annotations

import json

import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories
from tests.browser.helpers import (
    SLICES,
    canvas_box,
    image_to_page,
    login,
    make_ct_case,
    open_read,
    seed_for,
    wait_first_image,
    wait_saved,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def ct_case(request, project, reader_a, reader_b):
    """A real 12-slice CT in reading, with a schema whose nodule may also be a box."""
    return make_ct_case(project, reader_a, reader_b, seed=seed_for(request))


def test_reader_reads_a_case_end_to_end(live_server, page, ct_case, reader_a, artifacts_dir):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server, "reader_a", "en")
    page.goto(f"{live_server.url}/worklist/")
    assert "0 of 1 submitted" in page.locator("[data-testid=progress]").inner_text()
    page.keyboard.press("n")
    page.wait_for_url(f"{live_server.url}/read/{ct_case['a'].pk}/")
    wait_first_image(page)
    page.wait_for_function(
        "document.querySelector('.ws-load').dataset.state === 'done'", timeout=30_000
    )
    assert f"{SLICES} slices loaded" in page.locator("[data-testid=prefetch]").inner_text()

    # Scroll: wheel and arrow keys, read the slice overlay.
    page.locator("[data-testid=viewer]").hover()
    page.mouse.wheel(0, 300)
    page.wait_for_function("window.__ws.slice === 3")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("window.__ws.slice") == 5
    info = "document.querySelector('[data-testid=slice-info]').textContent"
    page.wait_for_function(f"{info}.includes('Slice 6 / {SLICES}')")
    assert "Position" in page.locator("[data-testid=slice-info]").inner_text()

    # Window: the lung preset by key, then a right-drag changes it.
    page.keyboard.press("1")
    page.wait_for_function("window.__ws.window.width === 1500")
    assert "W 1500  L -600" in page.locator("[data-testid=window-info]").inner_text()
    box = canvas_box(page)
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down(button="right")
    page.mouse.move(cx + 120, cy + 60, steps=5)
    page.mouse.up(button="right")
    assert page.evaluate("window.__ws.window.width") > 1500
    assert page.evaluate("window.__ws.window.center") > -600

    # A freehand contour on slice 6 ...
    page.keyboard.press("f")
    points = [(100, 100), (140, 96), (150, 130), (120, 150), (96, 130)]
    x, y = image_to_page(page, *points[0])
    page.mouse.move(x, y)
    page.mouse.down()
    for col, row in points[1:] + points[:1]:
        x, y = image_to_page(page, col, row)
        page.mouse.move(x, y, steps=4)
    page.mouse.up()
    assert page.locator("[data-testid=finding]").count() == 1
    # ... copied to the next slice: one finding, two slices.
    page.keyboard.press("c")
    assert page.evaluate("window.__ws.slice") == 6
    contour = page.evaluate("window.__ws.store.list()[0].geometry")
    assert contour["kind"] == "contour"
    assert [s["slice_index"] for s in contour["shapes"]] == [5, 6]
    assert all(90 <= p[0] <= 155 and 90 <= p[1] <= 155 for p in contour["shapes"][0]["points"])
    assert len(contour["centre_mm"]) == 3

    # Attributes of the contour finding from the generated form.
    page.select_option("#ws-attrs select[name=nodule_type]", "part_solid")
    page.fill("#ws-attrs input[name=long_axis_mm]", "7.5")
    page.click("#ws-attrs [data-key=malignancy] button[data-value='3']")

    # A box as a second finding (Escape: deselect, so it is a new finding).
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    x0, y0 = image_to_page(page, 180, 60)
    x1, y1 = image_to_page(page, 220, 90)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()
    assert page.locator("[data-testid=finding]").count() == 2
    page.select_option("#ws-attrs select[name=nodule_type]", "solid")
    page.fill("#ws-attrs input[name=long_axis_mm]", "4")
    page.click("#ws-attrs [data-key=malignancy] button[data-value='2']")
    # Undo and redo the last attribute change.
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("Control+z")
    assert "malignancy" not in page.evaluate("window.__ws.store.list()[1].attributes")
    page.keyboard.press("Control+Shift+z")
    assert page.evaluate("window.__ws.store.list()[1].attributes.malignancy") == 2

    # Case-level form.
    page.click("#ws-caseform [data-key=nodules_present] button[data-value=true]")
    page.click("#ws-caseform [data-key=image_quality] button[data-value='3']")
    wait_saved(page)
    page.keyboard.press("?")
    assert page.locator("[data-testid=help]").is_visible()
    assert "Freehand contour" in page.locator("[data-testid=help]").inner_text()
    page.screenshot(path=str(artifacts_dir / "workstation-help-en.png"))
    page.keyboard.press("?")
    page.screenshot(path=str(artifacts_dir / "workstation-drawn-en.png"))

    # Reload: everything is there, from the server.
    findings = Finding.objects.filter(task=ct_case["a"]).order_by("created_at")
    assert [f.geometry["kind"] for f in findings] == ["contour", "box"]
    assert findings[0].attributes == {
        "nodule_type": "part_solid",
        "long_axis_mm": 7.5,
        "malignancy": 3,
    }
    assert CaseLabel.objects.get(task=ct_case["a"]).values == {
        "nodules_present": True,
        "image_quality": 3,
    }
    page.reload()
    wait_first_image(page)
    assert page.locator("[data-testid=finding]").count() == 2
    assert page.evaluate("window.__ws.slice") == 6
    assert page.locator("#ws-caseform [data-key=image_quality] button.on").inner_text() == "3"

    # Submit: confirm, then the read is locked.
    page.click("[data-testid=submit]")
    page.click("[data-testid=confirm-submit]")
    page.locator("[data-testid=locked]").wait_for(state="visible")
    assert page.locator("[data-testid=save-state]").get_attribute("data-state") == "locked"
    ct_case["a"].refresh_from_db()
    assert ct_case["a"].state == ReadingTask.State.SUBMITTED
    page.screenshot(path=str(artifacts_dir / "workstation-submitted-en.png"))
    page.reload()
    wait_first_image(page)
    assert page.locator("[data-testid=locked]").is_visible()
    assert page.locator("[data-testid=submit]").is_hidden()
    assert page.locator("#ws-caseform button").first.is_disabled()
    assert errors == []


def test_second_reader_sees_nothing_of_the_first(
    live_server, page, ct_case, reader_a, reader_b, artifacts_dir
):
    own = Finding.objects.create(
        task=ct_case["a"],
        finding_type="nodule",
        geometry=factories.nodule_geometry(slice_index=2, kind="contour"),
        attributes={"nodule_type": "solid", "comment": "SECRET-MARK-OF-READER-A"},
    )
    CaseLabel.objects.create(task=ct_case["a"], values={"comment": "SECRET-CASE-NOTE-A"})
    bodies: list[str] = []

    def keep(response):
        try:
            body = response.body()
        except Exception:  # noqa: BLE001 - redirects and aborted requests have none
            return
        bodies.append(body.decode("latin-1"))

    page.on("response", keep)
    login(page, live_server, "reader_b", "zh-hans")
    open_read(page, live_server, ct_case["b"])
    page.wait_for_function(
        "document.querySelector('.ws-load').dataset.state === 'done'", timeout=30_000
    )
    page.wait_for_load_state("networkidle")
    assert page.locator("[data-testid=finding]").count() == 0
    assert page.evaluate("window.__ws.store.others.length") == 0
    assert page.locator("[data-testid=others]").is_hidden()
    html = page.content()
    secrets = ("SECRET-MARK-OF-READER-A", "SECRET-CASE-NOTE-A", str(own.uid))
    for secret in secrets:
        assert secret not in html
    assert len(bodies) >= 3
    for body in bodies:
        for secret in secrets:
            assert secret not in body
    # The API refuses too, even when asked by case.
    for url in (
        f"/api/v1/findings/?task__case={ct_case['case'].pk}",
        f"/api/v1/findings/{own.pk}/",
        f"/api/v1/reading-tasks/{ct_case['a'].pk}/case-label/",
    ):
        text = page.evaluate(
            f"fetch({json.dumps(url)}, {{credentials: 'same-origin'}}).then(r => r.text())"
        )
        for secret in secrets:
            assert secret not in text
    assert "结节" in page.locator("[data-testid=finding-type]").inner_text()
    page.screenshot(path=str(artifacts_dir / "workstation-blind-zh.png"))


PREVIEW_THEN_SHARP = """
async () => {
  const ws = window.__ws;
  const steps = [];
  const render = ws.renderer.render.bind(ws.renderer);
  ws.renderer.render = (frame, c, w, inv, key, opts) => {
    steps.push((opts && opts.step) || 1);
    return render(frame, c, w, inv, key, opts);
  };
  const start = { ...ws.window };
  for (let i = 1; i <= 10; i += 1) {
    ws.setWindow(start.center + 7 * i, start.width + 11 * i, { custom: true });
    await new Promise((r) => requestAnimationFrame(r));
  }
  while (ws.windowMovingAt) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  ws.renderer.render = render;
  return steps;
}
"""

SHARP = (
    "window.__ws.viewport.image === window.__ws.renderer.canvas"
    " && window.__ws.renderer.key === [window.__ws.slice, window.__ws.window.center,"
    " window.__ws.window.width, window.__ws.headerInvert !== window.__ws.invert].join('|')"
    " && window.__ws.renderer.canvas.width === 2048"
)


def test_large_radiograph_previews_during_a_window_drag_and_rests_sharp(
    live_server, page, project, reader_a
):
    ds, _ = fixtures.build_xr_dataset(seed=5, size=2048)
    series = index_datasets(project, [ds]).series[0]
    case = Case.objects.create(
        project=project, code="DX0001", series=series, state=Case.State.READING, qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    login(page, live_server, "reader_a", "en")
    page.goto(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page, timeout=30_000)
    page.wait_for_function(SHARP)
    assert "2048 × 2048" in page.locator("[data-testid=window-info]").inner_text()
    steps = page.evaluate(PREVIEW_THEN_SHARP)
    assert max(steps) >= 2
    assert steps[-1] == 1
    assert page.evaluate(SHARP)
    # A real right-drag ends on the full-resolution image of the new window.
    before = page.evaluate("window.__ws.window.width")
    box = canvas_box(page)
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down(button="right")
    page.mouse.move(cx + 150, cy + 40, steps=12)
    page.mouse.up(button="right")
    assert page.evaluate("window.__ws.window.width") > before
    page.wait_for_function(SHARP)
    # Magnified past 1:1 there is no preview even while dragging.
    page.evaluate("window.__ws.viewport.zoomAt(4, 100, 100); window.__ws.redraw()")
    assert page.evaluate("window.__ws.viewport.devicePixelsPerImagePixel") > 1
    assert set(page.evaluate(PREVIEW_THEN_SHARP)) == {1}
