"""The manager runs a project in the browser, in Chinese (issue 12, "Run a
project"): opens the project overview, moves a review-phase read whose reader
left to another reader, and reopens a reference finding for arbitration from the
case's reference-standard page. Screenshots go to the artifacts dir."""

from __future__ import annotations

import pytest

from annotation_server.accounts.models import Role
from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.models import Instance
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role, revoke_role
from annotation_server.reading import services as reading
from annotation_server.reading.models import ReadingTask
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse
from tests.adjudication.test_arbitration import decide, disputed_case
from tests.adjudication.test_console_stuck import sign
from tests.browser.helpers import login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def with_grid(case, slices: int = 40):
    """As tests/adjudication's grid_case: 40 axial slices, 0.7 mm pixels, 1 mm apart."""
    series = case.series
    series.pixel_spacing_mm = [0.7, 0.7]
    series.orientation = [1, 0, 0, 0, 1, 0]
    series.rows = series.columns = 512
    series.save()
    Instance.objects.bulk_create(
        Instance(
            series=series,
            sop_instance_uid=f"2.25.88{case.pk}{i:03d}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            slice_index=i,
            position=[-180.0, -180.0, -100.0 + i],
            rows=512,
            columns=512,
            sha256=f"{case.pk}{i:063d}"[-64:],
            file=f"x/{case.pk}/{i}",
        )
        for i in range(slices)
    )
    return case


def test_manager_in_chinese_reassigns_a_review_read_and_reopens_a_reference_finding(
    live_server, page, artifacts_dir, project, reader_a, reader_b, reader_c, manager, site
):
    reader_d = factories.UserFactory(username="reader_d", profile__site=site)
    grant_role(project, reader_d, Role.READER)
    protocol = project.protocol
    protocol.auto_accept_min_readers = 3
    protocol.drop_below_readers = 1
    protocol.save()
    readers = {"reader_a": reader_a, "reader_b": reader_b, "reader_c": reader_c}

    # Case 1: adjudicated after arbitration (before the review phase is switched on).
    done = with_grid(factories.CaseFactory(project=project, code="CASE-ADJ"))
    done_tasks = {n: factories.TaskFactory(case=done, reader=r) for n, r in readers.items()}
    clusters = disputed_case(done, done_tasks)
    sign(ArbitrationTask.objects.get(case=done), decide(clusters))
    done.refresh_from_db()
    assert done.state == Case.State.ADJUDICATED

    # Case 2: in the review phase; reader_c leaves before reviewing.
    protocol.review_phase = True
    protocol.save()
    stuck = with_grid(factories.CaseFactory(project=project, code="CASE-REV"))
    for i, (_name, reader) in enumerate(readers.items()):
        task = factories.TaskFactory(case=stuck, reader=reader)
        add_finding(task, ellipse(100 + i, 100, [5, 6]))
        reading.save_case_label(
            task, reader, {"nodules_present": True, "image_quality": 3}, expected_version=None
        )
        reading.submit(task, reader, expected_version=None)
    gone = ReadingTask.objects.get(case=stuck, phase=2, reader=reader_c)
    revoke_role(project, reader_c, Role.READER, by=manager)

    login(page, live_server, "manager", "zh-hans")
    page.goto(f"{live_server.url}/projects/{project.slug}/")
    page.wait_for_selector("[data-testid=overview-states]")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    row = page.locator(f"[data-testid=stuck-reads] tr[data-task='{gone.pk}']")
    assert row.locator(".pill").count() >= 1  # "reader left the project"
    page.screenshot(path=str(artifacts_dir / "console-overview-zh.png"), full_page=True)

    row.locator("select[name=reader]").select_option(str(reader_d.pk))
    row.locator("input[name=reason]").fill("离职")
    row.locator(f"[data-testid=reassign-{gone.pk}]").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith(f"/projects/{project.slug}/")
    new = ReadingTask.objects.get(case=stuck, phase=2, reader=reader_d)
    assert new.findings.count() == 1  # reader_c's blind mark, to review
    assert AuditEvent.objects.get(action="read.reassigned").data["reason"] == "离职"
    assert page.locator(f"[data-testid=stuck-reads] tr[data-task='{gone.pk}']").count() == 0
    page.screenshot(path=str(artifacts_dir / "console-reassigned-zh.png"), full_page=True)

    page.goto(f"{live_server.url}/projects/{project.slug}/cases/{done.pk}/reference/")
    three = clusters[3]
    card = page.locator(f"[data-ref='{three.ref_key}']")
    assert card.locator("[data-testid=revisions] tbody tr").count() == 1
    page.screenshot(path=str(artifacts_dir / "console-reference-zh.png"), full_page=True)
    card.locator(f"[data-testid=reopen-{three.ref_key}]").check()
    page.fill("[data-testid=reopen-reason]", "病理结果为部分实性")
    page.click("[data-testid=reopen-submit]")
    page.wait_for_load_state("networkidle")
    done.refresh_from_db()
    assert done.state == Case.State.ARBITRATION
    event = AuditEvent.objects.get(action="adjudication.reopened")
    assert event.data["reason"] == "病理结果为部分实性"
    assert event.data["items"]["clusters"] == [three.pk]
    assert page.locator("[data-testid=reopen-submit]").count() == 0  # no longer adjudicated
    page.screenshot(path=str(artifacts_dir / "console-reopened-zh.png"), full_page=True)
