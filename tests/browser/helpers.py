"""Steps the browser tests share: logging in, opening a read or an arbitration and
waiting until its first image is on the canvas, waiting for drafts to be saved,
mapping image pixels to page coordinates, and the CT case the reading tests read."""

from __future__ import annotations

import copy
import zlib

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case, LabelSchema
from annotation_server.reading.models import ReadingTask
from tests import factories

SLICES = 12
FIRST_IMAGE = "document.body.dataset.firstImage === '1'"
SAVE_STATE = "document.querySelector('[data-testid=save-state]').dataset.state"
READ_SAVER = "window.__ws.queue"
ARBITRATION_SAVER = "window.__arb.saver"


def login(page, live_server, username: str, language: str = "en") -> None:
    """Log in through the form and pick the UI language, as a user does."""
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    switch_language(page, language)


def switch_language(page, language: str) -> None:
    """Pick the UI language in the header and wait until the server has it and the
    page has reloaded in it (a page may finish other work before it posts)."""
    with page.expect_response(lambda r: "/i18n/setlang/" in r.url):
        page.select_option("[data-testid=language-select]", language)
    page.wait_for_load_state("networkidle")


def wait_first_image(page, timeout: float | None = None) -> None:
    """The viewer (workstation or arbitration) has painted its first windowed slice."""
    page.wait_for_function(FIRST_IMAGE, timeout=timeout)


def open_read(page, live_server, task) -> None:
    page.goto(f"{live_server.url}/read/{task.pk}/")
    wait_first_image(page)


def open_arbitration(page, live_server, task) -> None:
    page.goto(f"{live_server.url}/arbitrate/{task.pk}/")
    wait_first_image(page)


def open_from_arbitration_queue(page, live_server, task) -> str:
    """Open `task` the way the arbitrator does, through the queue; returns the
    queue's summary line, read before leaving it."""
    page.click("[data-testid=nav-arbitration]")
    page.wait_for_url(f"{live_server.url}/arbitrate/")
    summary = page.locator("[data-testid=queue-summary]").inner_text()
    page.click(f"[data-task='{task.pk}'] [data-testid=open-task]")
    page.wait_for_url(f"{live_server.url}/arbitrate/{task.pk}/")
    wait_first_image(page)
    return summary


def wait_saved(page, saver: str = READ_SAVER) -> None:
    """The save indicator says saved and the page's saver has nothing in flight."""
    page.wait_for_function(f"{SAVE_STATE} === 'saved' && {saver}.idle")


def canvas_box(page):
    return page.locator("[data-testid=viewer]").bounding_box()


def image_to_page(page, col: float, row: float) -> tuple[float, float]:
    """Page coordinates of an image pixel in the reading workstation's viewport."""
    box = canvas_box(page)
    x, y = page.evaluate(f"window.__ws.viewport.toScreen([{col}, {row}])")
    return box["x"] + x, box["y"] + y


def seed_for(request) -> int:
    """A CT seed of this test's own: tests running at once on other workers then
    never store the same content-addressed file at the same moment."""
    return 100 + zlib.crc32(request.node.nodeid.encode()) % 10_000


def make_ct_case(project, reader_a, reader_b, code: str = "CT0001", seed: int = 3) -> dict:
    """A real 12-slice CT in reading, with a schema whose nodule may also be a box,
    and one reading task for each of the two readers."""
    definition = copy.deepcopy(factories.schema("lung-nodule-ct").definition)
    definition["finding_types"][0]["geometry"] = ["contour", "ellipse", "point", "box", "polygon"]
    project.label_schema = LabelSchema.objects.create(
        key="lung-nodule-ct-browser", version=1, name="Lung nodule (test)", definition=definition
    )
    project.save()
    datasets, _ = fixtures.build_ct_datasets(slices=SLICES, seed=seed, matrix=256)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code=code, series=series, state=Case.State.READING, qc_status="pass"
    )
    return {
        "case": case,
        "a": ReadingTask.objects.create(case=case, reader=reader_a),
        "b": ReadingTask.objects.create(case=case, reader=reader_b),
    }
