"""How the workstation starts (issue 17): the series stream is asked for once,
by prefetch.js from the page head, and handed over to pixels.js (never asked for
a second time); whatever prefetch.js painted early gives way to the viewer's own
first image, and every slice arrives."""

from __future__ import annotations

import pytest

from tests.browser.helpers import SLICES, login, make_ct_case, seed_for, wait_first_image

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_stream_is_asked_for_once_and_handed_to_the_viewer(
    request, live_server, page, project, reader_a, reader_b
):
    case = make_ct_case(project, reader_a, reader_b, seed=seed_for(request))
    series = case["case"].series
    login(page, live_server, "reader_a", "en")
    streams: list[str] = []
    page.on(
        "request",
        lambda r: streams.append(r.url) if r.url.endswith(f"/series/{series.pk}/pixels/") else None,
    )
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/read/{case['a'].pk}/")
    wait_first_image(page)
    page.wait_for_function(
        "document.querySelector('.ws-load').dataset.state === 'done'", timeout=30_000
    )
    assert f"{SLICES} slices loaded" in page.locator("[data-testid=prefetch]").inner_text()
    assert len(streams) == 1, streams  # prefetch.js's request, taken over by pixels.js
    requested = page.evaluate(
        "(performance.getEntriesByName('pixels:requested')[0] || {}).startTime ?? null"
    )
    modules = page.evaluate("performance.getEntriesByName('ws:modules')[0].startTime")
    assert requested is not None and requested < modules  # asked for before the modules ran
    page.wait_for_function("window.__ws.viewport.image === window.__ws.renderer.canvas")
    assert page.locator("#ws-early").count() == 0  # the viewer's own image replaced it
    assert page.evaluate("window.__ws.loadedCount") == SLICES
    assert not errors, errors
