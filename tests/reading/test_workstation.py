"""The workstation page, the next-case jump, reading time and safe retries."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from annotation_server.projects.models import Case
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories

pytestmark = pytest.mark.django_db


def browser_for(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def bootstrap(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="ws-bootstrap" type="application/json">')
    body = html[start:].split(">", 1)[1].split("</script>", 1)[0]
    return json.loads(body)


def test_next_opens_the_in_progress_read_first_then_earliest_due(project, reader_a):
    later = factories.TaskFactory(case=factories.CaseFactory(project=project), reader=reader_a)
    started = factories.TaskFactory(
        case=factories.CaseFactory(project=project),
        reader=reader_a,
        state=ReadingTask.State.IN_PROGRESS,
    )
    client = browser_for(reader_a)
    response = client.get("/worklist/next/")
    assert response.status_code == 302 and response.url == f"/read/{started.pk}/"
    response = client.get(f"/worklist/next/?after={started.pk}")
    assert response.url == f"/read/{later.pk}/"


def test_next_skips_submitted_reads_and_closed_cases(project, reader_a):
    factories.TaskFactory(
        case=factories.CaseFactory(project=project),
        reader=reader_a,
        state=ReadingTask.State.SUBMITTED,
    )
    factories.TaskFactory(
        case=factories.CaseFactory(project=project, state=Case.State.ARBITRATION),
        reader=reader_a,
    )
    response = browser_for(reader_a).get("/worklist/next/", follow=True)
    assert response.redirect_chain[-1][0] == "/worklist/"
    assert "No open reads left" in response.content.decode()


def test_worklist_shows_own_progress_per_project_and_next_button(project, case, tasks, reader_a):
    ReadingTask.objects.filter(pk=tasks["reader_b"].pk).update(state="submitted")
    html = browser_for(reader_a).get("/worklist/").content.decode()
    assert "0 of 1 submitted" in html
    assert 'data-testid="next-case"' in html
    assert f'href="/read/{tasks["reader_a"].pk}/"' in html


def test_workstation_page_carries_only_the_readers_own_read(case, tasks, reader_a, reader_b):
    Finding.objects.create(
        task=tasks["reader_b"],
        finding_type="nodule",
        geometry=factories.nodule_geometry(),
        attributes={"comment": "B-ONLY-SECRET"},
    )
    CaseLabel.objects.create(task=tasks["reader_b"], values={"comment": "B-CASE-SECRET"})
    mine = Finding.objects.create(
        task=tasks["reader_a"], finding_type="nodule", geometry=factories.nodule_geometry()
    )
    response = browser_for(reader_a).get(f"/read/{tasks['reader_a'].pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "B-ONLY-SECRET" not in html and "B-CASE-SECRET" not in html
    data = bootstrap(response)
    assert [f["uid"] for f in data["findings"]] == [str(mine.uid)]
    assert data["writable"] is True and data["review"] is False
    assert data["task"]["id"] == tasks["reader_a"].pk
    assert data["schema"]["finding_types"][0]["key"] == "nodule"


def test_the_page_knows_its_reader(tasks, reader_a):
    """The start-up data is serialised for the logged-in reader, not an anonymous
    user: their own read is "me" and keeps its timings, and the findings query
    after the serializers still sees them."""
    task = tasks["reader_a"]
    ReadingTask.objects.filter(pk=task.pk).update(active_seconds=77)
    mine = Finding.objects.create(
        task=task, finding_type="nodule", geometry=factories.nodule_geometry()
    )
    data = bootstrap(browser_for(reader_a).get(f"/read/{task.pk}/"))
    assert data["task"]["reader"] == "me"
    assert data["task"]["active_seconds"] == 77
    assert [f["reader"] for f in data["findings"]] == ["me"]
    assert data["findings"][0]["uid"] == str(mine.uid)
    assert data["urls"]["next"].startswith("/worklist/next/")


def test_a_qualification_read_goes_on_to_the_qualification_page(project, reader_a, manager):
    from annotation_server.qualification import services as qualification

    case = factories.CaseFactory(project=project, state="qc")
    test = qualification.create_test(project, name="Q", by=manager)
    qualification.add_case(test, case, by=manager)
    reference = {
        "finding_type": "nodule",
        "geometry": factories.nodule_geometry(),
        "attributes": {"nodule_type": "solid", "long_axis_mm": 6.0, "malignancy": 3},
    }
    qualification.import_reference(case, [reference], by=manager)
    attempt = qualification.start_attempt(test, reader_a)
    task = attempt.tasks.get()
    data = bootstrap(browser_for(reader_a).get(f"/read/{task.pk}/"))
    assert data["writable"] is True
    assert data["urls"]["next"] == f"/projects/{project.slug}/qualification/"


def test_a_reader_cannot_open_another_readers_task(tasks, reader_a, outsider):
    assert browser_for(reader_a).get(f"/read/{tasks['reader_b'].pk}/").status_code == 404
    assert browser_for(outsider).get(f"/read/{tasks['reader_b'].pk}/").status_code == 404


def test_submitted_read_opens_read_only(tasks, reader_a):
    ReadingTask.objects.filter(pk=tasks["reader_a"].pk).update(state="submitted")
    data = bootstrap(browser_for(reader_a).get(f"/read/{tasks['reader_a'].pk}/"))
    assert data["writable"] is False


def test_heartbeat_adds_capped_reading_time_without_bumping_the_version(
    tasks, reader_a, reader_b, client_for
):
    task = tasks["reader_a"]
    an_hour_ago = timezone.now() - timedelta(hours=1)
    ReadingTask.objects.filter(pk=task.pk).update(assigned_at=an_hour_ago)
    url = f"/api/v1/reading-tasks/{task.pk}/heartbeat/"
    response = client_for(reader_a).post(url, {"seconds": 30}, format="json")
    assert response.status_code == 200 and response.json()["active_seconds"] == 30
    ten_minutes_ago = timezone.now() - timedelta(minutes=10)
    ReadingTask.objects.filter(pk=task.pk).update(last_heartbeat_at=ten_minutes_ago)
    response = client_for(reader_a).post(url, {"seconds": 3000}, format="json")
    assert response.json()["active_seconds"] == 150  # capped at 120 per report
    # Reports faster than the clock add no more than the wall time since the last one.
    for _ in range(5):
        response = client_for(reader_a).post(url, {"seconds": 120}, format="json")
    assert response.json()["active_seconds"] <= 152
    task.refresh_from_db()
    assert 150 <= task.active_seconds <= 152 and task.version == 1
    assert client_for(reader_b).post(url, {"seconds": 5}, format="json").status_code == 404
    ReadingTask.objects.filter(pk=task.pk).update(state="submitted")
    assert client_for(reader_a).post(url, {"seconds": 5}, format="json").status_code == 409


def test_a_retried_create_with_the_same_uid_makes_one_finding(tasks, reader_a, client_for):
    uid = str(uuid.uuid4())
    body = {
        "task": tasks["reader_a"].pk,
        "uid": uid,
        "finding_type": "nodule",
        "geometry": factories.nodule_geometry(kind="contour"),
        "attributes": {"nodule_type": "solid"},
    }
    client = client_for(reader_a)
    first = client.post("/api/v1/findings/", body, format="json")
    again = client.post("/api/v1/findings/", body, format="json")
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["uid"] == uid and again.json()["id"] == first.json()["id"]
    assert Finding.objects.filter(task=tasks["reader_a"]).count() == 1
    tasks["reader_a"].refresh_from_db()
    assert tasks["reader_a"].version == 2  # one write, not two


def test_a_uid_of_another_read_is_refused(tasks, reader_a, reader_b, client_for):
    theirs = Finding.objects.create(
        task=tasks["reader_b"], finding_type="nodule", geometry=factories.nodule_geometry()
    )
    response = client_for(reader_a).post(
        "/api/v1/findings/",
        {
            "task": tasks["reader_a"].pk,
            "uid": str(theirs.uid),
            "finding_type": "nodule",
            "geometry": factories.nodule_geometry(),
        },
        format="json",
    )
    assert response.status_code == 409 and "nodule" not in json.dumps(response.json())
    assert Finding.objects.filter(task=tasks["reader_a"]).count() == 0


def test_second_tab_gets_a_conflict_instead_of_overwriting(tasks, reader_a, client_for):
    client = client_for(reader_a)
    created = client.post(
        "/api/v1/findings/",
        {
            "task": tasks["reader_a"].pk,
            "finding_type": "nodule",
            "geometry": factories.nodule_geometry(),
        },
        format="json",
    ).json()
    url = f"/api/v1/findings/{created['id']}/"
    base = {"task": tasks["reader_a"].pk, "finding_type": "nodule"}
    first_tab = client.put(
        url, {**base, "geometry": factories.nodule_geometry(x=1), "version": 1}, format="json"
    )
    second_tab = client.put(
        url, {**base, "geometry": factories.nodule_geometry(x=2), "version": 1}, format="json"
    )
    assert first_tab.status_code == 200 and second_tab.status_code == 409
    assert second_tab.json()["code"] == "version_conflict"
    assert Finding.objects.get(pk=created["id"]).geometry["centre_mm"][0] == 1


def test_blind_reader_asking_by_case_gets_only_their_own(tasks, reader_a, client_for):
    Finding.objects.create(
        task=tasks["reader_b"], finding_type="nodule", geometry=factories.nodule_geometry()
    )
    mine = Finding.objects.create(
        task=tasks["reader_a"], finding_type="nodule", geometry=factories.nodule_geometry()
    )
    case_id = tasks["reader_a"].case_id
    rows = client_for(reader_a).get(f"/api/v1/findings/?task__case={case_id}").json()
    rows = rows["results"] if isinstance(rows, dict) else rows
    assert [r["uid"] for r in rows] == [str(mine.uid)]
