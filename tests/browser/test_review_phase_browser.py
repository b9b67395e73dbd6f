"""The unblinded review phase in the workstation: another reader's marks are shown
anonymised in their own colour, can be toggled, and stay read-only; the reader
keeps, edits or deletes only their own. Nothing identifies the other reader."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone

from annotation_server.reading import services
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories
from tests.browser.helpers import (
    image_to_page,
    login,
    make_ct_case,
    open_read,
    seed_for,
    wait_saved,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OWN_BOX = [[40, 40], [90, 80]]
OTHER_BOX = [[150, 140], [210, 190]]
SECRET_SECONDS = 98765
SECRET_DAY = dt.datetime(2031, 7, 13, 9, 30, tzinfo=dt.UTC)

# Pixels of a colour in a screen rectangle of the viewer canvas.
COUNT_COLOUR = """
([x0, y0, x1, y1, hex]) => {
  const canvas = document.querySelector('[data-testid=viewer]');
  const d = window.devicePixelRatio || 1;
  const w = Math.round((x1 - x0) * d), h = Math.round((y1 - y0) * d);
  const ctx = canvas.getContext('2d');
  const data = ctx.getImageData(Math.round(x0 * d), Math.round(y0 * d), w, h).data;
  const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    const off = Math.abs(data[i] - want[0]) + Math.abs(data[i + 1] - want[1])
      + Math.abs(data[i + 2] - want[2]);
    if (off < 30) n += 1;
  }
  return n;
}
"""


def box_geometry(points) -> dict:
    return {"kind": "box", "shapes": [{"slice_index": 0, "points": points}], "centre_mm": [0, 0, 0]}


@pytest.fixture
def review_case(request, project, reader_a, reader_b):
    protocol = project.protocol
    protocol.review_phase = True
    protocol.readers_per_case = 2
    protocol.save()
    made = make_ct_case(project, reader_a, reader_b, code="RV0001", seed=seed_for(request))
    for key, reader, points, kind in (
        ("a", reader_a, OWN_BOX, "solid"),
        ("b", reader_b, OTHER_BOX, "ground_glass"),
    ):
        task = made[key]
        Finding.objects.create(
            task=task,
            finding_type="nodule",
            geometry=box_geometry(points),
            attributes=factories.complete_nodule_attributes(nodule_type=kind),
        )
        CaseLabel.objects.create(task=task, values={"nodules_present": True, "image_quality": 3})
        services.submit(task, reader, expected_version=None)
    # B's blind read gets timings that must never reach A.
    ReadingTask.objects.filter(pk=made["b"].pk).update(
        started_at=SECRET_DAY - dt.timedelta(hours=1),
        submitted_at=SECRET_DAY,
        active_seconds=SECRET_SECONDS,
    )
    made["a2"] = ReadingTask.objects.get(case=made["case"], reader=reader_a, phase=2)
    made["b2"] = ReadingTask.objects.get(case=made["case"], reader=reader_b, phase=2)
    return made


def test_review_phase_shows_others_anonymised_toggleable_and_read_only(
    live_server, page, review_case, reader_a, reader_b, artifacts_dir
):
    assert timezone.now() < SECRET_DAY
    a2 = review_case["a2"]
    other_row = Finding.objects.get(task=review_case["b"])
    other_before = (other_row.version, other_row.geometry, other_row.attributes)
    bodies: list[str] = []
    writes: list[str] = []

    def keep(response):
        kind = response.headers.get("content-type", "")
        if not any(t in kind for t in ("json", "html", "javascript", "text")):
            return
        try:
            bodies.append(response.body().decode("utf-8", "replace"))
        except Exception:  # noqa: BLE001 - redirects and aborted requests have none
            return

    page.on("response", keep)
    page.on(
        "request",
        lambda r: (
            writes.append(f"{r.method} {r.url}")
            if "/api/v1/findings/" in r.url and r.method != "GET"
            else None
        ),
    )
    login(page, live_server, "reader_a", "en")
    open_read(page, live_server, a2)
    page.wait_for_function("window.__ws.store.others.length === 1")
    assert "Phase 2" in page.locator(".ws-phase").inner_text()

    # Own: the phase-1 copy, editable. Other: anonymised as R<n>, its own colour.
    assert page.locator("[data-testid=finding]").count() == 1
    label = page.evaluate("window.__ws.store.others[0].reader")
    assert label.startswith("R") and label[1:].isdigit()
    others_panel = page.locator("[data-testid=others]")
    assert others_panel.is_visible()
    assert f"{label} · 1 mark" in others_panel.inner_text()
    assert "1 marks" not in others_panel.inner_text()
    other_colour = page.evaluate(f"window.__ws._otherColour({json.dumps(label)})")
    own_uid = page.evaluate("window.__ws.store.list()[0].uid")
    own_colour = page.evaluate(f"window.__ws._colour({json.dumps(own_uid)})")
    assert other_colour.lower() != own_colour.lower()

    (x0, y0), (x1, y1) = (image_to_page(page, *p) for p in OTHER_BOX)
    box = page.locator("[data-testid=viewer]").bounding_box()
    rect = [x0 - box["x"] - 8, y0 - box["y"] - 20, x1 - box["x"] + 8, y1 - box["y"] + 8]

    def other_pixels() -> int:
        page.evaluate("new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        return page.evaluate(COUNT_COLOUR, [*rect, other_colour])

    assert other_pixels() > 20
    page.screenshot(path=str(artifacts_dir / "workstation-review-phase-en.png"))

    # Toggle: that reader off and on, then all others off and on.
    page.click(f"[data-reader={label}]")
    assert other_pixels() == 0
    page.click(f"[data-reader={label}]")
    assert other_pixels() > 20
    page.click("[data-testid=toggle-others]")
    assert other_pixels() == 0
    page.click("[data-testid=toggle-others]")
    assert other_pixels() > 20

    # Read-only: a click shows its attributes, but a drag, Delete and Shift+Delete
    # change nothing; the API refuses a direct write too.
    page.keyboard.press("v")
    edge_x, edge_y = x1, (y0 + y1) / 2
    page.mouse.click(edge_x, edge_y)
    assert page.evaluate("window.__ws.selected") == f"other:{other_row.pk}"
    assert f"{label} ·" in page.locator("[data-testid=attributes]").inner_text()
    assert page.locator("[data-testid=attributes] select").count() == 0
    page.mouse.move(edge_x, edge_y)
    page.mouse.down()
    page.mouse.move(edge_x + 60, edge_y + 40, steps=6)
    page.mouse.up()
    page.mouse.click(edge_x + 60, edge_y + 40)
    page.mouse.click(edge_x, edge_y)
    page.keyboard.press("Delete")
    page.keyboard.press("Shift+Delete")
    shown = page.evaluate("window.__ws.store.others[0].geometry.shapes[0].points")
    assert shown == OTHER_BOX
    assert page.evaluate("window.__ws.store.others.length") == 1
    assert page.locator("[data-testid=finding]").count() == 1
    for method in ("PUT", "DELETE"):
        status = page.evaluate(
            """async ([method, url, body]) => {
              const csrf = document.cookie.match(/csrftoken=([^;]+)/)[1];
              const r = await fetch(url, {method, credentials: 'same-origin',
                headers: {'Content-Type': 'application/json', 'X-CSRFToken': csrf},
                body: method === 'PUT' ? JSON.stringify(body) : undefined});
              return r.status;
            }""",
            [
                method,
                f"/api/v1/findings/{other_row.pk}/?version={other_row.version}",
                {
                    "task": other_row.task_id,
                    "finding_type": "nodule",
                    "geometry": box_geometry([[1, 1], [5, 5]]),
                    "attributes": {},
                    "version": other_row.version,
                },
            ],
        )
        assert status in (400, 403, 404, 405)
    other_row.refresh_from_db()
    assert (other_row.version, other_row.geometry, other_row.attributes) == other_before

    # Own: edit, then delete; the phase-1 read and the other reader stay as they were.
    page.click("[data-testid=finding]")
    page.select_option("#ws-attrs select[name=nodule_type]", "part_solid")
    wait_saved(page)
    own_row = Finding.objects.get(task=a2)
    assert own_row.attributes["nodule_type"] == "part_solid"
    assert own_row.derived_from.attributes["nodule_type"] == "solid"
    page.locator("[data-testid=viewer]").focus()
    page.keyboard.press("Shift+Delete")
    wait_saved(page)
    assert not Finding.objects.filter(task=a2).exists()
    assert Finding.objects.filter(task=review_case["a"]).count() == 1
    assert Finding.objects.filter(task=review_case["b2"]).count() == 1
    other_row.refresh_from_db()
    assert (other_row.version, other_row.geometry, other_row.attributes) == other_before
    # Only the reader's own finding was ever written from the page's own code.
    own_writes = [w for w in writes if f"/findings/{other_row.pk}/" not in w]
    assert own_writes and all("/api/v1/findings/" in w for w in own_writes)

    # Nothing in any page or API answer names B or carries B's timings.
    page.wait_for_load_state("networkidle")
    secrets = [
        reader_b.username,
        reader_b.profile.pseudonym,
        str(SECRET_SECONDS),
        "2031-07-13",
        "2031-07-12",
    ]
    assert len(bodies) >= 3
    assert any(label in body for body in bodies)
    for body in bodies:
        for secret in secrets:
            assert secret not in body, secret
    html = page.content()
    for secret in secrets:
        assert secret not in html
