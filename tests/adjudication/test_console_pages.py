"""The manager's console pages and REST of "Run a project" (issue 12): the
project overview, the reference standard page with reopen, and who may reach
them. Managers of the project only; a reader of the project, its arbitrator,
another project's manager and an outsider get 404; every action is audited."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation_server.accounts.models import Role
from annotation_server.adjudication.models import ArbitrationTask, ReferenceFinding
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role
from tests import factories
from tests.adjudication.test_arbitration import decide, disputed_case
from tests.adjudication.test_arbitration_pages import bootstrap
from tests.adjudication.test_console_stuck import sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_manager(site):
    user = factories.UserFactory(username="other_manager", profile__site=site)
    grant_role(factories.ProjectFactory(slug="other"), user, Role.MANAGER)
    return user


def web(user, lang="en") -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=lang)
    assert client.login(username=user.username, password=factories.PASSWORD)
    return client


@pytest.fixture
def adjudicated(grid_case, tasks, protocol, arbitrator):
    clusters = disputed_case(grid_case, tasks)
    sign(ArbitrationTask.objects.get(case=grid_case), decide(clusters))
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    return clusters


def routes(case_id: int, task_id: int) -> list[tuple[str, str]]:
    return [
        ("get", "/projects/lung/"),
        ("get", "/api/v1/projects/lung/overview/"),
        ("get", f"/projects/lung/cases/{case_id}/reference/"),
        ("get", f"/api/v1/projects/lung/cases/{case_id}/reference/"),
        ("get", "/api/v1/projects/lung/arbitration/stuck/"),
        ("post", f"/projects/lung/cases/{case_id}/reference/reopen/"),
        ("post", f"/api/v1/projects/lung/cases/{case_id}/reference/reopen/"),
        ("post", f"/projects/lung/cases/{case_id}/force-settle/"),
        ("post", f"/api/v1/projects/lung/cases/{case_id}/force-settle/"),
        ("post", f"/projects/lung/cases/{case_id}/withdraw/"),
        ("post", f"/api/v1/projects/lung/cases/{case_id}/withdraw/"),
        ("post", f"/projects/lung/cases/{case_id}/return/"),
        ("post", f"/api/v1/projects/lung/cases/{case_id}/return/"),
        ("post", f"/projects/lung/arbitration/{task_id}/reassign/"),
        ("post", "/api/v1/projects/lung/arbitration/reassign/"),
    ]


def test_only_the_projects_managers_reach_the_console(
    grid_case, tasks, protocol, manager, reader_a, arbitrator, other_manager, outsider
):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    events = AuditEvent.objects.count()
    for person in (reader_a, arbitrator, other_manager, outsider):
        client = web(person)
        for method, url in routes(grid_case.pk, task.pk):
            body = {"reason": "x", "task": task.pk, "arbitrator": arbitrator.pk, "ref_keys": ["a"]}
            answer = getattr(client, method)(url, body)
            assert answer.status_code == 404, (person.username, method, url, answer.status_code)
    assert AuditEvent.objects.count() == events  # nothing happened
    anonymous = Client()
    for method, url in routes(grid_case.pk, task.pk):
        assert getattr(anonymous, method)(url).status_code in (302, 403), url
    mine = web(manager)
    for _method, url in routes(grid_case.pk, task.pk)[:5]:
        assert mine.get(url).status_code == 200, url
    assert clusters


def test_overview_shows_states_readers_disputes_and_links(grid_case, tasks, protocol, manager):
    disputed_case(grid_case, tasks)
    page = web(manager).get("/projects/lung/")
    html = page.content.decode()
    assert 'data-state="arbitration"' in html
    assert 'data-reader="' in html and 'data-col="submitted"' in html
    assert "1 case in arbitration" in html
    assert 'href="/projects/lung/assignments/"' in html and 'href="/projects/lung/qc/"' in html
    data = web(manager).get("/api/v1/projects/lung/overview/").json()
    assert {s["state"]: s["n"] for s in data["states"]}["arbitration"] == 1
    assert data["disputes"]["cases"] == 1
    assert sum(r["submitted"] for r in data["readers"]) == 3
    assert data["estimate"]["remaining_reads"] == 0
    assert data["arbitrations"][0]["role"] == "sole"
    zh = web(manager, "zh-hans").get("/projects/lung/").content.decode()
    assert "仲裁" in zh


def test_reference_page_shows_revisions_support_rule_and_signature_then_reopens(
    grid_case, adjudicated, manager, arbitrator
):
    three = adjudicated[3]
    ref = ReferenceFinding.objects.get(ref_key=three.ref_key, is_current=True)
    client = web(manager)
    data = client.get(f"/api/v1/projects/lung/cases/{grid_case.pk}/reference/").json()
    entry = next(f for f in data["findings"] if f["ref_key"] == str(three.ref_key))
    current = entry["current"]
    assert current["match_rule"] == "centre_distance" and current["match_threshold"] == 5.0
    assert len(current["supporting"]) == 3
    assert current["arbitration"]["signature_sha256"] == ref.arbitration_task.signature_hash
    assert current["reason_code"] == "best_delineation"
    assert data["settlement"]["match_rule"] == "centre_distance"
    page = client.get(f"/projects/lung/cases/{grid_case.pk}/reference/").content.decode()
    assert ref.arbitration_task.signature_hash in page
    assert f'data-ref="{three.ref_key}"' in page

    url = f"/projects/lung/cases/{grid_case.pk}/reference/reopen/"
    refused = client.post(url, {"ref_key": str(three.ref_key), "reason": " "})
    assert refused.status_code == 302
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED  # no reason, no reopening
    done = client.post(url, {"ref_key": str(three.ref_key), "reason": "pathology says part-solid"})
    assert done.status_code == 302
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ARBITRATION
    event = AuditEvent.objects.get(action="adjudication.reopened")
    assert event.data["items"]["clusters"] == [three.pk]
    assert event.data["reason"] == "pathology says part-solid"
    new = ArbitrationTask.objects.get(case=grid_case, round=2)
    assert new.items["clusters"] == [three.pk]
    # the old revision stays as history
    assert ReferenceFinding.objects.filter(pk=ref.pk, is_current=True).exists()


@pytest.mark.parametrize("method", ["staple", "majority"])
def test_the_arbitrator_sees_the_merged_shape_that_signing_writes(
    method, grid_case, tasks, protocol, arbitrator
):
    clusters = disputed_case(grid_case, tasks)
    three = clusters[3]
    task = ArbitrationTask.objects.get(case=grid_case)
    boot = bootstrap(web(arbitrator).get(f"/arbitrate/{task.pk}/"))
    shown = next(c for c in boot["task"]["clusters"] if c["id"] == three.pk)
    assert set(shown["merged_geometries"]) == {"majority", "staple"}
    decisions = decide(clusters)
    decisions["clusters"][str(three.pk)] = {
        "action": "accept_merged",
        "method": method,
        "reason_code": "merged_delineation",
    }
    sign(task, decisions)
    written = ReferenceFinding.objects.get(ref_key=three.ref_key, is_current=True)
    preview = shown["merged_geometries"][method]
    assert written.geometry["shapes"] == preview["shapes"]
    assert written.geometry.get("method", method) == method
