"""Reading phases: blind phase 1; the optional unblinded review phase 2 (each
reader's phase-1 read copied into their phase-2 task, both kept); matching once
the last phase is in. Blinding holds in each phase."""

from __future__ import annotations

import json

import pytest

from annotation_server.audit.models import AuditEvent
from annotation_server.jobs.models import Job
from annotation_server.reading import phases, services
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories

pytestmark = pytest.mark.django_db


def _read(task, x, *, source="manual", submit=True):
    finding = services.save_finding(
        task,
        task.reader,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=x),
        attributes=factories.complete_nodule_attributes(),
        source=source,
    )
    services.save_case_label(
        task, task.reader, {"nodules_present": True, "image_quality": 2}, expected_version=None
    )
    if submit:
        services.submit(task, task.reader, expected_version=None)
    return finding


def _settle_jobs(case):
    return Job.objects.filter(kind="adjudication.settle", params__case_id=case.pk)


@pytest.fixture
def review(project):
    project.protocol.review_phase = True
    project.protocol.reading_days = 5
    project.protocol.save()
    return project


def test_without_review_the_last_blind_read_hands_the_case_to_matching(case, tasks):
    _read(tasks["reader_a"], 10.0)
    _read(tasks["reader_b"], 11.0)
    assert not _settle_jobs(case).exists()
    _read(tasks["reader_c"], 12.0)
    assert _settle_jobs(case).count() == 1
    assert not ReadingTask.objects.filter(case=case, phase=2).exists()
    assert AuditEvent.objects.filter(action="adjudication.reads_complete").count() == 1


def test_a_case_short_of_readers_is_not_complete(project, case, reader_a, reader_b):
    for reader in (reader_a, reader_b):  # protocol asks for 3
        _read(factories.TaskFactory(case=case, reader=reader), 10.0)
    assert not _settle_jobs(case).exists()


def test_review_phase_opens_with_each_readers_own_read_copied(review, case, tasks):
    originals = {
        "reader_a": _read(tasks["reader_a"], 10.0, source="model_accepted"),
        "reader_b": _read(tasks["reader_b"], 20.0),
    }
    assert not ReadingTask.objects.filter(case=case, phase=2).exists()
    originals["reader_c"] = _read(tasks["reader_c"], 30.0)
    assert not _settle_jobs(case).exists()
    for name, blind in tasks.items():
        second = ReadingTask.objects.get(case=case, phase=2, reader=blind.reader)
        assert second.state == "assigned" and second.attempt is None and second.due_at
        [copy] = second.findings.all()
        assert copy.derived_from == originals[name]
        assert copy.source == originals[name].source
        assert copy.geometry == originals[name].geometry
        assert copy.attributes == originals[name].attributes
        assert copy.uid != originals[name].uid
        assert CaseLabel.objects.get(task=second).values == {
            "nodules_present": True,
            "image_quality": 2,
        }
    assert AuditEvent.objects.filter(action="case.review_phase_opened").count() == 1
    assert phases.open_review_phase(case, None) == []  # idempotent


def test_both_phases_are_kept_and_the_last_review_hands_over(review, case, tasks):
    for i, task in enumerate(tasks.values()):
        _read(task, 10.0 + i)
    second = {t.reader_id: t for t in ReadingTask.objects.filter(case=case, phase=2)}
    a = second[tasks["reader_a"].reader_id]
    # reader_a now thinks it is a vessel: removes it in phase 2
    copy = a.findings.get()
    services.delete_finding(copy, a.reader, expected_version=copy.version)
    services.submit(a, a.reader, expected_version=None)
    assert Finding.objects.filter(task=tasks["reader_a"]).count() == 1  # phase 1 kept
    assert not _settle_jobs(case).exists()
    for task in list(second.values())[1:]:
        services.submit(task, task.reader, expected_version=None)
    assert _settle_jobs(case).count() == 1


def test_nobody_sees_anything_of_others_during_phase_1(review, case, tasks, client_for):
    theirs = _read(tasks["reader_b"], 55.5)
    _read(tasks["reader_a"], 10.0)  # submitted, others still reading
    api = client_for(tasks["reader_a"].reader)
    findings = api.get("/api/v1/findings/").json()["results"]
    assert str(theirs.uid) not in json.dumps(findings)
    assert [r["reader"] for r in api.get("/api/v1/reading-tasks/").json()["results"]] == ["me"]


def test_review_shows_others_phase_1_marks_anonymised_but_not_their_revisions(
    review, case, tasks, client_for
):
    blind = {name: _read(task, 20.0 + i) for i, (name, task) in enumerate(tasks.items())}
    second = ReadingTask.objects.get(case=case, phase=2, reader=tasks["reader_b"].reader)
    revised = services.save_finding(
        second,
        second.reader,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=66.6),
        attributes=factories.complete_nodule_attributes(),
    )
    api = client_for(tasks["reader_a"].reader)
    reads = api.get("/api/v1/reading-tasks/").json()["results"]
    others = [r for r in reads if r["reader"] != "me"]
    assert sorted(r["reader"] for r in others) == ["R2", "R3"]
    assert all(r["phase"] == 1 and r["submitted_at"] is None for r in others)
    text = json.dumps(api.get("/api/v1/findings/").json())
    for finding in blind.values():
        assert str(finding.uid) in text
    assert str(revised.uid) not in text and "66.6" not in text
    assert "reader_b" not in text and "reader_c" not in text
    outsider_view = client_for(tasks["reader_a"].reader).get(f"/api/v1/reading-tasks/{second.pk}/")
    assert outsider_view.status_code == 404


def test_outsider_reader_of_the_project_sees_nothing_in_review(
    review, case, tasks, client_for, project
):
    from annotation_server.accounts.models import Role
    from annotation_server.projects.services import grant_role

    other = factories.UserFactory(username="reader_x")
    grant_role(project, other, Role.READER)
    for i, task in enumerate(tasks.values()):
        _read(task, 30.0 + i)
    api = client_for(other)
    assert api.get("/api/v1/findings/").json()["count"] == 0
    assert api.get("/api/v1/reading-tasks/").json()["count"] == 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simultaneous_last_submits_open_the_review_phase_exactly_once(project, case, tasks):
    """Two readers press submit at the same moment: the case row lock makes the
    second wait for the first, so one of them (never neither, never both) opens
    phase 2."""
    import threading

    from django.db import connection

    assert connection.vendor == "postgresql", "row locks need PostgreSQL (make test)"
    project.protocol.review_phase = True
    project.protocol.save()
    for task in tasks.values():
        _read(task, 10.0, submit=False)
    services.submit(tasks["reader_a"], tasks["reader_a"].reader, expected_version=None)
    barrier = threading.Barrier(2)
    errors = []

    def submit(task):
        try:
            barrier.wait(10)
            services.submit(task, task.reader, expected_version=None)
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=submit, args=(tasks[name],)) for name in ("reader_b", "reader_c")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert ReadingTask.objects.filter(case=case, state="submitted", phase=1).count() == 3
    assert ReadingTask.objects.filter(case=case, phase=2).count() == 3
    assert AuditEvent.objects.filter(action="case.review_phase_opened").count() == 1


def test_the_last_submitting_reader_does_not_see_the_settle_job(case, tasks, manager):
    """Its result (outcome, dispute counts) would tell a blind reader how the others read."""
    from django.test import Client

    for name, x in (("reader_a", 10.0), ("reader_b", 11.0), ("reader_c", 12.0)):
        _read(tasks[name], x)
    job = _settle_jobs(case).get()
    last = Client()
    assert last.login(username=tasks["reader_c"].reader.username, password=factories.PASSWORD)
    listed = last.get("/api/v1/jobs/").json()["results"]
    assert job.pk not in [j["id"] for j in listed]
    assert last.get(f"/api/v1/jobs/{job.pk}/").status_code == 404
    boss = Client()
    assert boss.login(username=manager.username, password=factories.PASSWORD)
    assert boss.get(f"/api/v1/jobs/{job.pk}/").status_code == 200
