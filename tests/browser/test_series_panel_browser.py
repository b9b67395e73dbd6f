"""The workstation's series panel (viewer/seriespanel.js): a study of several
series shows one thumbnail per image series, the case's own marked; another
series opens read-only as a reference and one click brings the reader back to
the case's series. A study of one series shows no panel."""

from __future__ import annotations

import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import ReadingTask
from tests import factories
from tests.browser.helpers import login, make_ct_case, open_read, seed_for, wait_first_image
from tests.imaging.rgb_photos import block_photo, photo_dataset

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PANEL = "[data-testid=series-panel]"
ITEM = "[data-testid=series-item]"
THUMBS_LOADED = f"""() => {{
  const imgs = [...document.querySelectorAll('{ITEM} img')];
  return imgs.length === 3 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}}"""


@pytest.fixture
def study_case(request, project, reader_a):
    """A 12-slice CT read by reader_a, in a study that also holds a 5 mm and a
    2.5 mm reconstruction of the same scan and a SEG (never listed)."""
    study = fixtures.build_ct_study(
        slices=12, seed=seed_for(request), matrix=128, reconstructions=(5.0, 2.5)
    )
    thin, thick, mid = (index_datasets(project, ds).series[0] for ds, _ in study)
    factories.SeriesFactory(study=thin.study, modality="SEG")
    case = Case.objects.create(
        project=project, code="CT0100", series=thin, state="reading", qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    return {"task": task, "thin": thin, "thick": thick, "mid": mid}


def test_reader_switches_to_a_reference_series_and_back(
    live_server, page, study_case, artifacts_dir
):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    task, thick = study_case["task"], study_case["thick"]
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    page.wait_for_selector(f"{PANEL}[data-ready='1']")
    assert page.locator(PANEL).is_visible()
    items = page.locator(ITEM)
    assert items.count() == 3  # the three CT series; not the SEG
    page.wait_for_function(THUMBS_LOADED)
    current = page.locator(f"{ITEM}[aria-current=page]")
    assert current.get_attribute("data-series") == str(study_case["thin"].pk)
    assert "Being read" in current.inner_text()
    assert "12 images" in current.inner_text() and "1.25 mm" in current.inner_text()
    other = page.locator(f"{ITEM}[data-series='{thick.pk}']")
    assert "Chest 5mm mediastinum" in other.inner_text()
    assert "CT · 3 images · 5 mm" in other.inner_text()
    page.screenshot(path=str(artifacts_dir / "series-panel-en.png"))

    # Another series: read-only, marked as a reference, the panel marks it shown.
    other.click()
    page.wait_for_url(f"{live_server.url}/read/{task.pk}/series/{thick.pk}/")
    wait_first_image(page)
    banner = page.locator("[data-testid=reference-banner]")
    assert banner.is_visible()
    assert "Reference series, not being read" in banner.inner_text()
    assert "not being read" in page.locator("[data-testid=reference-mark]").inner_text()
    assert page.evaluate("window.__viewer.boot.series.id") == thick.pk
    assert page.evaluate("window.__viewer.count") == 3
    assert page.evaluate("window.__viewer.canDraw('box')") is False
    assert page.locator("[data-tool=box]").count() == 0  # nothing to draw with
    page.wait_for_selector(f"{PANEL}[data-ready='1']")
    assert page.locator(f"{ITEM}[aria-current=page]").get_attribute("data-series") == str(thick.pk)
    assert (
        "Being read" in page.locator(f"{ITEM}[data-series='{study_case['thin'].pk}']").inner_text()
    )
    page.screenshot(path=str(artifacts_dir / "series-reference-en.png"))

    # One click back to the case's series, in the workstation.
    page.click("[data-testid=back-to-case]")
    page.wait_for_url(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page)
    assert page.evaluate("window.__ws.count") == 12
    assert page.evaluate("window.__ws.writable") is True

    # ... and again through the panel: the 2.5 mm one, then the case's own item.
    page.wait_for_selector(f"{PANEL}[data-ready='1']")
    page.click(f"{ITEM}[data-series='{study_case['mid'].pk}']")
    page.wait_for_url(f"{live_server.url}/read/{task.pk}/series/{study_case['mid'].pk}/")
    wait_first_image(page)
    assert page.evaluate("window.__viewer.count") == 6
    page.wait_for_selector(f"{PANEL}[data-ready='1']")
    page.click(f"{ITEM}[data-series='{study_case['thin'].pk}']")
    page.wait_for_url(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page)
    assert not errors, errors


def test_a_study_of_one_series_shows_no_panel(
    request, live_server, page, project, reader_a, reader_b
):
    case = make_ct_case(project, reader_a, reader_b, seed=seed_for(request))
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, case["a"])
    page.wait_for_selector(f"{PANEL}[data-count='1']", state="attached")
    assert page.locator(PANEL).is_hidden()
    assert page.locator(ITEM).count() == 0


def test_photographs_without_description_are_named_by_their_eye(
    live_server, page, project, reader_a
):
    """A visit's two fundus photographs carry no SeriesDescription: the panel names
    each by its eye (ImageLaterality R: OD, L: OS) and modality, not "(no description)"."""
    od = photo_dataset(block_photo(96, 128, seed=31), laterality="OD")
    os_ = photo_dataset(
        block_photo(96, 128, seed=32), laterality="OS", study_uid=str(od.StudyInstanceUID)
    )
    for ds in (od, os_):
        assert not ds.get("SeriesDescription")
    result = index_datasets(project, [od, os_])
    by_uid = {s.instances.get().sop_instance_uid: s for s in result.series}
    right, left = by_uid[str(od.SOPInstanceUID)], by_uid[str(os_.SOPInstanceUID)]
    case = Case.objects.create(
        project=project, code="OP0100", series=right, state="reading", qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    page.wait_for_selector(f"{PANEL}[data-ready='1']")
    names = {
        page.locator(f"{ITEM}[data-series='{s.pk}'] .sp-name").inner_text(): s.pk
        for s in (right, left)
    }
    assert names == {"OD · OP": right.pk, "OS · OP": left.pk}
    listing = page.evaluate(f"fetch('/api/v1/cases/{case.pk}/series/').then((r) => r.json())")
    eyes = {s["id"]: (s["laterality"], s["view_position"]) for s in listing["series"]}
    assert eyes == {right.pk: ("R", ""), left.pk: ("L", "")}
