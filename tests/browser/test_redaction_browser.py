"""The dataset manager (zh-Hans) reviews a burned-in radiograph held by the OCR at
ingest: opens the quarantine, draws a box over the text on the canvas, previews the
redaction and applies it; the redacted copy joins the project."""

from __future__ import annotations

import time

import pydicom
import pytest
from django.core.files.storage import default_storage

import fixtures
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.deid import pixel_text
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Candidate
from annotation_server.imaging.models import Instance, Quarantine
from tests.browser.helpers import login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _hold_burned_radiograph(project, manager):
    ds, truth = fixtures.build_xr_dataset(seed=77, size=512, defect="burned-in-text")
    ds.BurnedInAnnotation = "NO"  # only the pixels tell
    data = fixtures.dataset_bytes(ds)
    item = Candidate("burned/0000.dcm", len(data), lambda: data)
    report = ingest(project, [item], user=manager, source="test", run_qc=False, workers=1)
    assert report.summary()["quarantined"] == 1
    return Quarantine.objects.get(project=project), truth["defect"]["box"]


def test_manager_draws_previews_and_applies_a_redaction(
    live_server, page, project, manager, artifacts_dir, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    item, (x0, y0, x1, y1) = _hold_burned_radiograph(project, manager)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    login(page, live_server, "manager", "zh-hans")
    assert page.locator("html").get_attribute("lang").lower().startswith("zh")

    page.goto(f"{live_server.url}/projects/{project.slug}/quarantine/")
    assert page.locator("[data-testid=quarantine-row]").count() == 1
    page.click("[data-testid=quarantine-open]")
    page.wait_for_load_state("networkidle")
    canvas = page.locator("[data-testid=redact-canvas]")
    canvas.wait_for(state="visible")
    page.wait_for_function(
        "document.getElementById('redact-status').textContent.length > 0", timeout=15_000
    )
    assert page.locator("[data-testid=box-item]").count() >= 1  # the OCR's suggestions
    page.click("[data-testid=clear-boxes]")
    assert page.locator("[data-testid=box-item]").count() == 0
    assert page.locator("[data-testid=apply-redaction]").is_disabled()

    # draw one box over the burned text, a few pixels wider than it
    box = canvas.bounding_box()
    scale = box["width"] / 512

    def at(col: float, row: float) -> tuple[float, float]:
        return box["x"] + col * scale, box["y"] + row * scale

    page.mouse.move(*at(x0 - 3, y0 - 3))
    page.mouse.down()
    page.mouse.move(*at((x0 + x1) / 2, (y0 + y1) / 2), steps=5)
    page.mouse.move(*at(x1 + 4, y1 + 4), steps=5)
    page.mouse.up()
    assert page.locator("[data-testid=box-item]").count() == 1
    page.screenshot(path=str(artifacts_dir / "redaction-drawn-zh.png"), full_page=True)

    page.click("[data-testid=preview]")
    preview = page.locator("[data-testid=redact-preview]")
    preview.wait_for(state="visible", timeout=30_000)
    assert canvas.is_hidden()
    page.screenshot(path=str(artifacts_dir / "redaction-preview-zh.png"), full_page=True)
    item.refresh_from_db()
    assert item.status == "pending" and not Instance.objects.exists()

    page.click("[data-testid=apply-redaction]")
    page.wait_for_selector("[data-testid=redacted-uid]", timeout=60_000)
    page.screenshot(path=str(artifacts_dir / "redaction-applied-zh.png"), full_page=True)
    assert not errors, errors

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        item.refresh_from_db()
        if item.status == "redacted":
            break
        time.sleep(0.2)
    assert item.status == "redacted" and item.reviewed_by == manager
    (drawn,) = item.redacted_boxes
    assert drawn["x"] <= x0 and drawn["y"] <= y0
    assert drawn["x"] + drawn["width"] >= x1 + 1 and drawn["y"] + drawn["height"] >= y1 + 1
    instance = Instance.objects.get(sop_instance_uid=item.redacted_sop_instance_uid)
    with default_storage.open(instance.file, "rb") as fh:
        ds = pydicom.dcmread(fh)
        assert ds.BurnedInAnnotation == "NO"
        assert not pixel_text.find_text_in_dataset(ds).has_text
    assert page.locator("[data-testid=redacted-uid]").inner_text() == instance.sop_instance_uid
    assert AuditEvent.objects.filter(
        action="imaging.quarantine_redacted", actor_id=manager.pk
    ).exists()
