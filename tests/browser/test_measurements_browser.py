"""Measurements from the contour in the workstation: a reader traces a planted
nodule, the panel shows its long and short axis (within 1 mm of the generator's
truth), volume and HU, each with its unit; the axes tool overrides the contour's."""

from __future__ import annotations

import math
import re

import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import Finding, ReadingTask
from tests.browser.helpers import image_to_page, login, open_read, seed_for, wait_saved
from tests.qc.test_measurements import sphere_mask, traced

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

UNITS = ("mm", "mm²", "mm³", "HU")
MEASURE = "#ws-attrs [data-testid=measurements]"


@pytest.fixture
def nodule_case(request, project, reader_a):
    datasets, truth = fixtures.build_ct_datasets(
        slices=12, seed=seed_for(request), matrix=512, nodules=1
    )
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code="M0001", series=series, state=Case.State.READING, qc_status="pass"
    )
    return ReadingTask.objects.create(case=case, reader=reader_a), truth


def _value(page, key: str) -> tuple[float, str]:
    text = page.locator(f"{MEASURE} dd[data-measure={key}]").inner_text()
    number, unit = re.fullmatch(r"(-?[\d.]+) (\S+)", text).groups()
    return float(number), unit


def test_the_panel_shows_the_contours_measurements_with_units(
    live_server, page, nodule_case, reader_a, artifacts_dir
):
    task, truth = nodule_case
    (nodule,) = truth["nodules"]
    col, row, k = nodule["centre_voxel"]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    page.locator("[data-testid=viewer]").hover()
    for _ in range(k):
        page.keyboard.press("ArrowDown")
    page.wait_for_function(f"window.__ws.slice === {k}")

    # Trace the nodule's edge with the freehand tool, as a reader follows it.
    outline = traced(sphere_mask(truth, nodule, k), rays=48)
    page.keyboard.press("f")
    page.mouse.move(*image_to_page(page, *outline[0]))
    page.mouse.down()
    for c, r in outline[1:] + outline[:1]:
        page.mouse.move(*image_to_page(page, c, r), steps=2)
    page.mouse.up()
    wait_saved(page)
    page.locator(MEASURE).wait_for(state="visible")
    page.wait_for_function(f"!document.querySelector('{MEASURE}').classList.contains('stale')")

    long_mm, long_unit = _value(page, "long_axis")
    short_mm, short_unit = _value(page, "short_axis")
    assert (long_unit, short_unit) == ("mm", "mm")
    assert abs(long_mm - nodule["diameter_mm"]) <= 1.0, (long_mm, nodule)
    assert abs(short_mm - nodule["diameter_mm"]) <= 1.0, (short_mm, nodule)
    assert _value(page, "volume")[1] == "mm³" and _value(page, "area")[1] == "mm²"
    hu_mean, hu_unit = _value(page, "hu_mean")
    assert hu_unit == "HU" and nodule["centre_hu"] - 250 < hu_mean < nodule["centre_hu"] + 15
    # Units on every number.
    for text in page.locator(f"{MEASURE} dd[data-measure]").all_inner_texts():
        assert text.split(" ")[-1] in UNITS, text
    finding = Finding.objects.get(task=task)
    assert finding.measurements["long_axis"] == pytest.approx(long_mm, abs=0.05)
    page.screenshot(path=str(artifacts_dir / "measurements-contour-en.png"))

    # The axis fields stay the reader's until they take the measured values.
    assert page.input_value("#ws-attrs input[name=long_axis_mm]") == ""
    page.click("[data-testid=use-axes]")
    assert float(page.input_value("#ws-attrs input[name=long_axis_mm]")) == round(long_mm, 1)
    assert float(page.input_value("#ws-attrs input[name=short_axis_mm]")) == round(short_mm, 1)
    assert page.locator("[data-testid=use-axes]").count() == 0
    wait_saved(page)

    # The axes tool overrides: a 20-pixel long axis across the nodule.
    page.keyboard.press("a")
    a, b = image_to_page(page, col - 10, row), image_to_page(page, col + 10, row)
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=4)
    page.mouse.up()
    wait_saved(page)
    page.wait_for_function(
        f"document.querySelector('{MEASURE} dt') && "
        f"document.querySelector('{MEASURE}').textContent.includes('(drawn)')"
    )
    drawn = page.evaluate("window.__ws.store.list()[0].geometry.axes.long")
    length = math.hypot(drawn[1][0] - drawn[0][0], drawn[1][1] - drawn[0][1]) * 0.7
    assert _value(page, "long_axis")[0] == pytest.approx(length, abs=0.06)
    assert "Contour axes" in page.locator(MEASURE).inner_text()
    finding.refresh_from_db()
    assert finding.measurements["axes_from"] == "reader"
    assert finding.attributes["long_axis_mm"] == pytest.approx(length, abs=0.06)
    assert errors == []
