"""The arbitration pages: the arbitrator's queue and the arbitration view of one
task, who may open them, and what a blind arbitrator's page holds."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from annotation_server.accounts.models import Role
from annotation_server.adjudication import services
from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.projects.services import grant_role
from tests import factories
from tests.adjudication.test_arbitration import decide, disputed_case

pytestmark = pytest.mark.django_db


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bootstrap(response) -> dict:
    html = response.content.decode()
    pattern = r'<script id="arb-bootstrap" type="application/json">(.*?)</script>'
    found = re.search(pattern, html, re.S)
    assert found, "the page carries its bootstrap"
    return json.loads(found.group(1))


def test_queue_lists_own_tasks_with_disputed_cluster_counts(grid_case, tasks, protocol, arbitrator):
    disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    page = browser(arbitrator).get("/arbitrate/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'href="/arbitrate/{task.pk}/"' in html
    assert grid_case.code in html
    row = re.search(rf'data-task="{task.pk}".*?</tr>', html, re.S).group(0)
    assert re.search(r'data-testid="cluster-count">2<', row)
    assert 'data-testid="nav-arbitration"' in html  # the main nav links the queue
    home = browser(arbitrator).get("/").content.decode()
    assert 'data-testid="home-arbitration"' in home


def test_queue_is_empty_and_nav_has_no_link_for_a_reader(grid_case, tasks, protocol, reader_a):
    disputed_case(grid_case, tasks)
    page = browser(reader_a).get("/arbitrate/")
    assert page.status_code == 200
    html = page.content.decode()
    assert grid_case.code not in html
    assert 'data-testid="nav-arbitration"' not in html


def test_arbitrator_opens_the_view_with_anonymised_reads(grid_case, tasks, protocol, arbitrator):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    page = browser(arbitrator).get(f"/arbitrate/{task.pk}/")
    assert page.status_code == 200
    boot = bootstrap(page)
    assert {c["id"] for c in boot["task"]["clusters"]} == {clusters[2].pk, clusters[3].pk}
    assert [r["label"] for r in boot["readers"]] == ["R1", "R2", "R3"]
    assert boot["writable"] is True and boot["task"]["version"] == task.version
    assert boot["series"]["id"] == grid_case.series_id
    assert len(boot["series"]["instances"]) == 40
    html = page.content.decode()
    for name in ("reader_a", "reader_b", "reader_c"):
        assert name not in html


@pytest.mark.parametrize("who", ["reader_a", "outsider", "manager"])
def test_people_other_than_the_tasks_arbitrator_are_refused(
    grid_case, tasks, protocol, who, request
):
    disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    user = request.getfixturevalue(who)
    assert browser(user).get(f"/arbitrate/{task.pk}/").status_code == 404


def test_arbitrator_of_another_project_is_refused(grid_case, tasks, protocol, arbitrator_b):
    disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    other = factories.ProjectFactory(slug="liver")
    grant_role(other, arbitrator_b, Role.ARBITRATOR)
    assert browser(arbitrator_b).get(f"/arbitrate/{task.pk}/").status_code == 404
    assert grid_case.code not in browser(arbitrator_b).get("/arbitrate/").content.decode()


def test_arbitrator_who_lost_the_role_is_refused(grid_case, tasks, protocol, arbitrator):
    from annotation_server.projects.models import Membership
    from annotation_server.projects.permissions import sync_object_permissions

    disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    Membership.objects.filter(user=arbitrator, role=Role.ARBITRATOR).delete()
    sync_object_permissions(grid_case.project, arbitrator)
    assert browser(arbitrator).get(f"/arbitrate/{task.pk}/").status_code == 404


def test_anonymous_visitor_is_sent_to_login(grid_case, tasks, protocol):
    disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    response = Client().get(f"/arbitrate/{task.pk}/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_second_blind_arbitrator_sees_nothing_of_the_firsts_decisions(
    grid_case, tasks, two_blind, arbitrator
):
    clusters = disputed_case(grid_case, tasks)
    first = ArbitrationTask.objects.get(case=grid_case, role="first")
    second = ArbitrationTask.objects.get(case=grid_case, role="second")
    decisions = decide(clusters)
    marker = "first-arbitrator-note-5521"
    decisions["clusters"][str(clusters[3].pk)]["reason_text"] = marker
    first = services.save_decisions(
        first, first.arbitrator, decisions, expected_version=first.version
    )
    services.sign(first, first.arbitrator, factories.PASSWORD, expected_version=first.version)

    page = browser(second.arbitrator).get(f"/arbitrate/{second.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert marker not in html
    boot = bootstrap(page)
    assert boot["task"]["decisions"] == {}
    assert boot["task"]["blind_decisions"] is None
    assert boot["references"] == []
    # The first arbitrator's own page is signed and read-only, waiting for the second.
    mine = bootstrap(browser(first.arbitrator).get(f"/arbitrate/{first.pk}/"))
    assert mine["writable"] is False and mine["task"]["state"] == "signed"
    assert mine["references"] == []
    assert browser(first.arbitrator).get(f"/arbitrate/{second.pk}/").status_code == 404
