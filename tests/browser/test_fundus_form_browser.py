"""The reader's case form for the fundus-dr schema offers the DR grade's answer
outside its scale ("ungradable") beside 0-4, and the DMO enum's "ungradable": a
reader grades one photograph ungradable and another grade 3 with macular oedema,
submits both, and the stored reads hold those values and the derived referable
field the server computed (None for the ungradable one, True for the other)."""

from __future__ import annotations

import pytest

from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import CaseLabel, ReadingTask
from tests import factories
from tests.browser.helpers import login, wait_first_image, wait_saved
from tests.imaging.rgb_photos import block_photo, photo_dataset

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

GRADE = "#ws-caseform [data-key=dr_grade]"


@pytest.fixture
def fundus_tasks(project, reader_a):
    project.label_schema = factories.schema("fundus-dr")
    project.modality = "OP"
    project.save(update_fields=["label_schema", "modality"])
    tasks = []
    for n, eye in enumerate(("OD", "OS"), 1):
        ds = photo_dataset(block_photo(240, 320, seed=40 + n), laterality=eye)
        series = index_datasets(project, [ds]).series[0]
        case = Case.objects.create(
            project=project,
            code=f"OP{n:04d}",
            series=series,
            state=Case.State.READING,
            qc_status="pass",
        )
        tasks.append(ReadingTask.objects.create(case=case, reader=reader_a))
    return tasks


def _submit(page) -> None:
    wait_saved(page)
    page.click("[data-testid=submit]")
    page.click("[data-testid=confirm-submit]")
    page.locator("[data-testid=locked]").wait_for(state="visible")


def test_reader_grades_one_photo_ungradable_and_one_grade_3_with_oedema(
    live_server, page, fundus_tasks
):
    ungradable_task, graded_task = fundus_tasks
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, live_server, "reader_a", "en")

    page.goto(f"{live_server.url}/read/{ungradable_task.pk}/")
    wait_first_image(page, timeout=30_000)
    # the scale 0-4 and then the answer outside it, labelled from the schema
    values = page.eval_on_selector_all(f"{GRADE} button", "(bs) => bs.map((b) => b.dataset.value)")
    assert values == ["0", "1", "2", "3", "4", "ungradable"]
    button = page.locator(f"{GRADE} button[data-value=ungradable]")
    assert button.inner_text() == "Ungradable"
    dmo = page.eval_on_selector_all(
        "#ws-caseform select[name=dmo] option", "(os) => os.map((o) => o.value)"
    )
    assert "ungradable" in dmo
    button.click()
    assert button.get_attribute("aria-checked") == "true"
    page.select_option("#ws-caseform select[name=dmo]", "ungradable")
    _submit(page)

    page.goto(f"{live_server.url}/read/{graded_task.pk}/")
    wait_first_image(page, timeout=30_000)
    # choosing ungradable and then a scale value leaves only the scale value chosen
    page.click(f"{GRADE} button[data-value=ungradable]")
    page.click(f"{GRADE} button[data-value='3']")
    assert page.locator(f"{GRADE} button.on").inner_text() == "3"
    page.select_option("#ws-caseform select[name=dmo]", "present")
    _submit(page)

    first = CaseLabel.objects.get(task=ungradable_task)
    assert first.values == {"dr_grade": "ungradable", "dmo": "ungradable"}
    assert first.derived["referable_dr"] is None
    second = CaseLabel.objects.get(task=graded_task)
    assert second.values == {"dr_grade": 3, "dmo": "present"}
    assert second.derived["referable_dr"] is True
    for task in fundus_tasks:
        task.refresh_from_db()
        assert task.state == ReadingTask.State.SUBMITTED
    # reloaded from the server, the locked form shows the stored answer
    page.goto(f"{live_server.url}/read/{ungradable_task.pk}/")
    wait_first_image(page, timeout=30_000)
    assert page.locator(f"{GRADE} button.on").get_attribute("data-value") == "ungradable"
    assert errors == []
