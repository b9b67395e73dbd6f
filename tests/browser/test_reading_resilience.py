"""Nothing a reader draws is lost: network failures retry from the local buffer, a
closed tab is restored when the read is opened again, and two tabs of one read
never silently overwrite each other (the second gets a visible conflict)."""

from __future__ import annotations

import json
import time

import pytest

from annotation_server.reading.models import Finding
from tests import factories
from tests.browser.helpers import (
    SAVE_STATE,
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


def findings_api(url: str) -> bool:
    return "/api/v1/findings/" in url


@pytest.fixture
def ct_case(request, project, reader_a, reader_b):
    return make_ct_case(project, reader_a, reader_b, seed=seed_for(request))


def plant_solid_nodule(task) -> Finding:
    """A saved ellipse finding on the first slice, version 1, for two views to edit."""
    return Finding.objects.create(
        task=task,
        finding_type="nodule",
        geometry=factories.nodule_geometry(slice_index=0, kind="ellipse"),
        attributes={"nodule_type": "solid"},
    )


def draw_box(page, c0: float, r0: float, c1: float, r1: float) -> None:
    page.keyboard.press("b")
    x0, y0 = image_to_page(page, c0, r0)
    x1, y1 = image_to_page(page, c1, r1)
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=5)
    page.mouse.up()


def buffer(page, task) -> dict | None:
    return page.evaluate(f"JSON.parse(localStorage.getItem('refset.read.{task.pk}'))")


def wait_until(page, check, timeout: float = 15.0) -> None:
    """Poll the database while the browser keeps running (route handlers included)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out waiting for the database"
        page.wait_for_timeout(100)


def test_a_network_failure_shows_retrying_and_saves_once_back(
    live_server, page, ct_case, artifacts_dir
):
    task = ct_case["a"]
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    network = {"mode": "abort", "failed": 0}

    def flaky(route):
        if network["mode"] == "abort":
            network["failed"] += 1
            route.abort("internetdisconnected")
        elif network["mode"] == "500":
            network["failed"] += 1
            route.fulfill(status=500, content_type="text/html", body="<h1>Server Error</h1>")
        else:
            route.continue_()

    page.route(findings_api, flaky)
    draw_box(page, 60, 60, 110, 100)
    assert page.locator("[data-testid=finding]").count() == 1
    page.wait_for_function(f"{SAVE_STATE} === 'retrying'")
    assert page.locator("[data-testid=save-state]").inner_text() == "Saving… retrying"
    assert "retrying in" in page.locator("#ws-flash").inner_text()
    uid = page.evaluate("window.__ws.store.list()[0].uid")
    assert uid in buffer(page, task)["findings"]
    assert not Finding.objects.filter(task=task).exists()
    page.screenshot(path=str(artifacts_dir / "workstation-retrying-en.png"))

    # Still failing, now with 500s: an attribute change joins the buffer.
    network["mode"] = "500"
    page.select_option("#ws-attrs select[name=nodule_type]", "ground_glass")
    failed_before = network["failed"]
    page.wait_for_function(f"{SAVE_STATE} === 'retrying'")
    wait_until(page, lambda: network["failed"] > failed_before)
    assert buffer(page, task)["findings"][uid]["value"]["attributes"] == {
        "nodule_type": "ground_glass"
    }
    assert not Finding.objects.filter(task=task).exists()

    network["mode"] = "ok"
    page.wait_for_function(f"{SAVE_STATE} === 'saved'", timeout=20_000)
    assert page.locator("[data-testid=save-state]").inner_text() == "All changes saved"
    assert network["failed"] >= 2
    finding = Finding.objects.get(task=task)
    assert str(finding.uid) == uid
    assert finding.geometry["kind"] == "box"
    assert finding.attributes == {"nodule_type": "ground_glass"}
    assert buffer(page, task) is None


def test_a_closed_tab_is_restored_from_the_local_buffer_and_saved(live_server, page, ct_case):
    task = ct_case["a"]
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    context = page.context
    # The edit never reaches the server before the tab is closed.
    page.route(findings_api, lambda route: route.abort("internetdisconnected"))
    draw_box(page, 40, 40, 90, 80)
    page.wait_for_function(f"{SAVE_STATE} === 'retrying'")
    uid = page.evaluate("window.__ws.store.list()[0].uid")
    assert uid in buffer(page, task)["findings"]
    page.close()
    assert not Finding.objects.filter(task=task).exists()

    again = context.new_page()
    open_read(again, live_server, task)
    again.wait_for_function("window.__ws.store.list().length === 1")
    assert "restored" in again.locator("#ws-flash").inner_text()
    wait_saved(again)
    finding = Finding.objects.get(task=task)
    assert str(finding.uid) == uid and finding.geometry["kind"] == "box"
    assert buffer(again, task) is None

    # An update that reached the server, but the tab closed before the answer came.
    def lost_answer(route):
        route.fetch()
        route.abort("internetdisconnected")

    again.route(findings_api, lost_answer)
    again.click("[data-testid=finding]")
    again.select_option("#ws-attrs select[name=nodule_type]", "calcified")
    wait_until(
        again,
        lambda: Finding.objects.get(pk=finding.pk).attributes.get("nodule_type") == "calcified",
    )
    arrived_version = Finding.objects.get(pk=finding.pk).version
    assert buffer(again, task)["findings"][uid]["base"]["version"] == finding.version
    again.close()

    third = context.new_page()
    writes: list[str] = []
    third.on(
        "request",
        lambda r: (
            writes.append(f"{r.method} {r.url}")
            if findings_api(r.url) and r.method != "GET"
            else None
        ),
    )
    open_read(third, live_server, task)
    wait_saved(third)
    third.wait_for_load_state("networkidle")
    # It was already saved: no conflict, nothing sent again, the buffer is empty.
    assert third.evaluate(SAVE_STATE) == "saved"
    assert third.locator("[data-testid=conflict]").is_hidden()
    assert writes == []
    assert buffer(third, task) is None
    row = Finding.objects.get(pk=finding.pk)
    assert row.version == arrived_version and row.attributes == {"nodule_type": "calcified"}


def test_a_second_tab_gets_a_conflict_and_overwrites_nothing(
    live_server, page, ct_case, artifacts_dir
):
    task = ct_case["a"]
    planted = plant_solid_nodule(task)
    login(page, live_server, "reader_a", "en")
    first = page
    second = page.context.new_page()
    second.set_default_timeout(15_000)
    open_read(first, live_server, task)
    open_read(second, live_server, task)

    first.bring_to_front()
    first.click("[data-testid=finding]")
    first.select_option("#ws-attrs select[name=nodule_type]", "part_solid")
    wait_saved(first)
    planted.refresh_from_db()
    assert planted.attributes == {"nodule_type": "part_solid"} and planted.version == 2

    # The second tab still holds version 1 and edits the same finding.
    second.bring_to_front()
    second.click("[data-testid=finding]")
    second.select_option("#ws-attrs select[name=nodule_type]", "ground_glass")
    second.wait_for_function(f"{SAVE_STATE} === 'conflict'")
    banner = second.locator("[data-testid=conflict]")
    assert banner.is_visible()
    assert "changed in another tab or window" in banner.inner_text()
    assert second.locator("[data-testid=save-state]").inner_text() == "Conflict: not saved"
    second.screenshot(path=str(artifacts_dir / "workstation-conflict-en.png"))
    planted.refresh_from_db()
    assert planted.attributes == {"nodule_type": "part_solid"} and planted.version == 2

    # Later edits in the stale tab are not sent either.
    second.fill("#ws-attrs input[name=long_axis_mm]", "9")
    second.wait_for_timeout(1500)
    planted.refresh_from_db()
    assert planted.attributes == {"nodule_type": "part_solid"} and planted.version == 2

    # "Reload the newest version" shows the first tab's save.
    second.click("#ws-reload")
    wait_first_image(second)
    second.click("[data-testid=finding]")
    assert second.locator("#ws-attrs select[name=nodule_type]").input_value() == "part_solid"
    assert second.evaluate(SAVE_STATE) == "saved"
    assert json.dumps(buffer(second, task) or {}).count("ground_glass") == 0


def test_a_lost_answer_is_retried_without_a_false_conflict(live_server, page, ct_case):
    """The update arrived but its answer was lost: the retry meets 409, finds its own
    content on the server and carries on instead of reporting a conflict."""
    task = ct_case["a"]
    planted = plant_solid_nodule(task)
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    lost = {"on": True, "count": 0}

    def lose_answer(route):
        if lost["on"] and route.request.method == "PUT":
            lost["count"] += 1
            lost["on"] = False
            route.fetch()
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.route(findings_api, lose_answer)
    page.click("[data-testid=finding]")
    page.select_option("#ws-attrs select[name=nodule_type]", "perifissural")
    page.wait_for_function(f"{SAVE_STATE} === 'retrying'")
    page.wait_for_function(f"{SAVE_STATE} === 'saved'", timeout=20_000)
    assert lost["count"] == 1
    assert page.locator("[data-testid=conflict]").is_hidden()
    planted.refresh_from_db()
    assert planted.attributes == {"nodule_type": "perifissural"} and planted.version == 2
    # The next change is based on the adopted version and saves normally.
    page.fill("#ws-attrs input[name=long_axis_mm]", "6.5")
    wait_saved(page)
    planted.refresh_from_db()
    assert planted.attributes == {"nodule_type": "perifissural", "long_axis_mm": 6.5}
    assert planted.version == 3


def test_a_change_made_while_its_save_is_in_flight_is_sent_too(live_server, page, ct_case):
    """The save of a new finding is held on the wire while the reader changes its
    type: once the first answer comes, the newer content must still be sent (it was
    once marked saved without being sent)."""
    task = ct_case["a"]
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, task)
    held = []

    def hold_first_create(route):
        if route.request.method == "POST" and not held:
            held.append(route)  # answered below, after the change
        else:
            route.continue_()

    page.route(findings_api, hold_first_create)
    draw_box(page, 60, 60, 110, 100)
    page.wait_for_function(f"{SAVE_STATE} === 'saving'")
    wait_until(page, lambda: bool(held))
    page.select_option("#ws-attrs select[name=nodule_type]", "calcified")
    held[0].continue_()
    wait_until(
        page,
        lambda: Finding.objects.filter(task=task, attributes__nodule_type="calcified").exists(),
    )
    wait_saved(page)
    finding = Finding.objects.get(task=task)
    assert finding.attributes == {"nodule_type": "calcified"} and finding.version == 2
    assert buffer(page, task) is None
