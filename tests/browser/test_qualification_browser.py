"""A reader who must qualify, in a real browser: told so on the home page and
worklist, the test case labelled in the workstation, and a failed attempt's
result that counts misses by kind without saying where. The manager opens a
case's series in the read-only viewer."""

from __future__ import annotations

import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.qualification import services as q
from annotation_server.reading import services as reading
from tests import factories
from tests.browser.helpers import login, switch_language, wait_first_image

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _case(project, code, seed):
    datasets, _ = fixtures.build_ct_datasets(slices=6, seed=seed, matrix=128)
    series = index_datasets(project, datasets).series[0]
    return Case.objects.create(
        project=project, code=code, series=series, state=Case.State.QC, qc_status="pass"
    )


def test_reader_is_told_reads_labelled_case_and_gets_no_positions(
    live_server, page, project, manager, reader_a, artifacts_dir
):
    test = q.create_test(project, name="Exam", by=manager, max_attempts=2)
    cases = [_case(project, f"QB{i}", 40 + i) for i in range(2)]
    for i, case in enumerate(cases):
        q.add_case(test, case, by=manager)
        geometry = factories.nodule_geometry(x=10.0 + i, y=5.0, z=0.0, slice_index=2)
        q.import_reference(
            case,
            [
                {
                    "finding_type": "nodule",
                    "geometry": geometry,
                    "attributes": factories.complete_nodule_attributes(),
                }
            ],
            by=manager,
        )
    login(page, live_server, "reader_a", "zh-hans")
    assert page.locator("[data-testid=must-qualify]").count() == 1
    page.goto(f"{live_server.url}/worklist/")
    assert page.locator("[data-testid=must-qualify]").count() == 1
    page.screenshot(path=str(artifacts_dir / "qualification-worklist-zh.png"), full_page=True)
    page.goto(f"{live_server.url}/projects/{project.slug}/qualification/")
    page.click("[data-testid=start-attempt]")
    page.wait_for_url(f"{live_server.url}/read/**")
    wait_first_image(page)
    label = page.locator("[data-testid=qualification-label]")
    # zh-Hans once the catalogue is compiled (the lead compiles /tmp/refset-zh)
    assert label.is_visible() and label.inner_text() in ("资格考核", "Qualification test")
    page.screenshot(path=str(artifacts_dir / "qualification-workstation-zh.png"))

    attempt = test.attempts.get(reader=reader_a)
    for task in attempt.tasks.all():  # an empty read: the nodule is missed
        reading.save_case_label(
            task, reader_a, {"nodules_present": False, "image_quality": 3}, expected_version=None
        )
        reading.submit(task, reader_a, expected_version=None)
    switch_language(page, "en")
    page.goto(f"{live_server.url}/projects/{project.slug}/qualification/attempts/{attempt.pk}/")
    text = page.locator("main").inner_text() if page.locator("main").count() else page.content()
    assert "1 finding missed" in text
    assert page.locator("[data-testid=positions-hidden]").is_visible()
    assert page.locator("[data-testid=misses]").count() == 0
    page.screenshot(path=str(artifacts_dir / "qualification-result-hidden.png"), full_page=True)

    page.context.clear_cookies()
    login(page, live_server, "manager", "en")
    page.goto(f"{live_server.url}/projects/{project.slug}/cases/{cases[0].pk}/images/?from=qc")
    wait_first_image(page)
    assert page.locator("[data-testid=read-only]").is_visible()
    page.screenshot(path=str(artifacts_dir / "series-viewer-read-only.png"))
