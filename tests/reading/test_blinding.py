"""While a phase is blind, nothing a reader can request reveals another reader's
read: not its findings, labels, counts, timings nor identity."""

from __future__ import annotations

import json

import pytest

from annotation_server.reading import services
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories

pytestmark = pytest.mark.django_db


def _plant(task, x, seconds=98765):
    finding = Finding.objects.create(
        task=task,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=x),
        attributes=factories.complete_nodule_attributes(),
        centre_x_mm=x,
    )
    CaseLabel.objects.create(task=task, values={"nodules_present": True, "image_quality": 3})
    ReadingTask.objects.filter(pk=task.pk).update(state="in_progress", active_seconds=seconds)
    return finding


def _crawl(client, project, case) -> str:
    """Every read endpoint a reader can reach, concatenated (the client's session
    signs it in for the API and for the pages alike)."""
    urls = [
        "/api/v1/",
        "/api/v1/me/",
        "/api/v1/projects/",
        f"/api/v1/projects/{project.slug}/",
        f"/api/v1/projects/{project.slug}/progress/",
        "/api/v1/cases/",
        f"/api/v1/cases/{case.pk}/",
        "/api/v1/reading-tasks/",
        f"/api/v1/reading-tasks/?case={case.pk}",
        "/api/v1/findings/",
        "/api/v1/jobs/",
    ]
    bodies = []
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        bodies.append(json.dumps(response.json()))
    # every list the API has, and the case-scoped views of matching and arbitration
    from annotation_server.api_urls import router

    for prefix, _viewset, _basename in router.registry:
        response = client.get(f"/api/v1/{prefix}/")
        bodies.append(f"{prefix} {response.status_code} {response.content.decode()}")
    for url in (
        f"/api/v1/findings/?task__case={case.pk}",
        f"/api/v1/clusters/?case={case.pk}",
        f"/api/v1/reference-findings/?case={case.pk}",
        f"/api/v1/adjudication/{case.pk}/",
        f"/api/v1/projects/{project.slug}/assignments/",
    ):
        response = client.get(url)
        bodies.append(f"{url} {response.status_code} {response.content.decode()}")
    for task in ReadingTask.objects.filter(case=case):
        for url in (
            f"/api/v1/reading-tasks/{task.pk}/",
            f"/api/v1/reading-tasks/{task.pk}/case-label/",
            f"/read/{task.pk}/",  # the workstation page itself
        ):
            response = client.get(url, follow=False)
            bodies.append(f"{url} {response.status_code} {response.content.decode()}")
    return "\n".join(bodies)


def test_reader_cannot_see_other_reads_while_blind(project, case, tasks, reader_a, client_for):
    mine = _plant(tasks["reader_a"], 11.0, seconds=12)
    theirs = [_plant(tasks[name], 55.5) for name in ("reader_b", "reader_c")]
    text = _crawl(client_for(reader_a), project, case)
    assert str(mine.uid) in text
    assert f"/read/{tasks['reader_a'].pk}/ 200" in text  # the crawl saw the workstation page
    for finding in theirs:
        assert str(finding.uid) not in text
    assert "55.5" not in text
    for name in ("reader_b", "reader_c"):
        assert name not in text
        assert f"/api/v1/reading-tasks/{tasks[name].pk}/ 404" in text
    assert "98765" not in text
    listed = client_for(reader_a).get("/api/v1/reading-tasks/").json()
    assert listed["count"] == 1


def test_the_crawl_would_see_another_read_that_is_visible(
    project, case, tasks, manager, client_for
):
    """The crawl above can catch a leak: a manager (not reading) sees the reads."""
    theirs = _plant(tasks["reader_b"], 55.5)
    text = _crawl(client_for(manager), project, case)
    assert str(theirs.uid) in text and "55.5" in text


def test_reader_stays_blind_after_submitting_while_others_read(
    tasks, reader_a, client_for, project, case
):
    _plant(tasks["reader_a"], 11.0)
    theirs = _plant(tasks["reader_b"], 55.5)
    services.submit(tasks["reader_a"], reader_a, expected_version=None)
    text = _crawl(client_for(reader_a), project, case)
    assert str(theirs.uid) not in text


def test_progress_shows_a_reader_only_their_own_counts(
    project, case, tasks, reader_a, client_for, manager
):
    other_case = factories.CaseFactory(project=project)
    factories.TaskFactory(case=other_case, reader=tasks["reader_b"].reader)
    mine = client_for(reader_a).get(f"/api/v1/projects/{project.slug}/progress/").json()
    assert mine == {"mine": {"total": 1, "submitted": 0}}
    managed = client_for(manager).get(f"/api/v1/projects/{project.slug}/progress/").json()
    assert managed["cases"]["reading"] == 2


def test_review_phase_shows_others_anonymised_without_timings(
    project, case, tasks, reader_a, client_for
):
    project.protocol.review_phase = True
    project.protocol.save()
    planted = {name: _plant(task, 20.0 + i) for i, (name, task) in enumerate(tasks.items())}
    for task in tasks.values():
        services.submit(task, task.reader, expected_version=None)
    assert ReadingTask.objects.filter(case=case, reader=reader_a, phase=2).exists()
    reads = client_for(reader_a).get("/api/v1/reading-tasks/", {"phase": 1}).json()["results"]
    labels = sorted(r["reader"] for r in reads)
    assert labels == ["R2", "R3", "me"]
    others = [r for r in reads if r["reader"] != "me"]
    assert all(r["submitted_at"] is None and r["active_seconds"] is None for r in others)
    findings = client_for(reader_a).get("/api/v1/findings/").json()["results"]
    own_review_copy = Finding.objects.get(task__reader=reader_a, task__phase=2)
    assert own_review_copy.derived_from == planted["reader_a"]
    expected = {str(f.uid) for f in planted.values()} | {str(own_review_copy.uid)}
    assert {f["uid"] for f in findings} == expected
    assert "reader_b" not in json.dumps(findings)


def test_manager_who_is_also_reading_a_case_is_blind_on_it(
    project, case, tasks, reader_a, client_for
):
    from annotation_server.accounts.models import Role
    from annotation_server.projects.services import grant_role

    grant_role(project, reader_a, Role.MANAGER)
    theirs = _plant(tasks["reader_b"], 66.0)
    findings = client_for(reader_a).get("/api/v1/findings/").json()["results"]
    assert str(theirs.uid) not in {f["uid"] for f in findings}
    manager_view = client_for(reader_a).get(f"/api/v1/reading-tasks/{tasks['reader_b'].pk}/")
    assert manager_view.status_code == 404


def test_review_phase_findings_of_others_carry_no_timestamps(project, case, tasks, reader_a):
    """When each mark was drawn and changed tells another reader's pace."""
    from django.test import Client

    project.protocol.review_phase = True
    project.protocol.save()
    for i, task in enumerate(tasks.values()):
        _plant(task, 20.0 + i)
        services.submit(task, task.reader, expected_version=None)
    web = Client()
    assert web.login(username=reader_a.username, password=factories.PASSWORD)
    findings = web.get("/api/v1/findings/").json()["results"]
    others = [f for f in findings if f["reader"] not in ("me",)]
    mine = [f for f in findings if f["reader"] == "me"]
    assert others and mine
    assert all(f["created_at"] is None and f["updated_at"] is None for f in others)
    assert all(f["created_at"] and f["updated_at"] for f in mine)


def test_someone_elses_task_answers_like_a_task_that_does_not_exist(tasks, reader_a):
    from django.test import Client

    web = Client()
    assert web.login(username=reader_a.username, password=factories.PASSWORD)
    body = {
        "finding_type": "nodule",
        "geometry": factories.nodule_geometry(),
        "attributes": {"nodule_type": "solid"},
    }
    missing_id = ReadingTask.objects.order_by("-pk").first().pk + 1000
    theirs = web.post(
        "/api/v1/findings/",
        {**body, "task": tasks["reader_b"].pk},
        content_type="application/json",
    )
    missing = web.post(
        "/api/v1/findings/", {**body, "task": missing_id}, content_type="application/json"
    )
    assert theirs.status_code == missing.status_code == 400
    shape = theirs.json()["task"][0].replace(str(tasks["reader_b"].pk), "N")
    assert shape == missing.json()["task"][0].replace(str(missing_id), "N")
