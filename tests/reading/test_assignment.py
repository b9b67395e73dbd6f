"""Assignment: N distinct eligible readers per QC-passed case, least-loaded first,
own-site and arbitrator exclusions, the qualification gate, idempotent re-runs,
reassignment, the job (also through a real Celery worker), page and API."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation_server.accounts.models import Role
from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.audit.models import AuditEvent
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case, Membership
from annotation_server.projects.services import grant_role
from annotation_server.qualification.models import QualificationTest
from annotation_server.reading import assignment
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories
from tests.worker import wait_for_job

pytestmark = pytest.mark.django_db


def _qc_case(project, code, *, qc_status=Case.QcStatus.PASS, site=None, state=Case.State.QC):
    return factories.CaseFactory(
        project=project, code=code, state=state, qc_status=qc_status, site=site
    )


def _readers(project, names, site=None):
    users = []
    for name in names:
        user = factories.UserFactory(username=name, profile__site=site)
        grant_role(project, user, Role.READER)
        users.append(user)
    return users


def _reads(case):
    return ReadingTask.objects.filter(case=case, attempt__isnull=True, phase=1)


def test_balanced_load_and_n_distinct_readers_per_case(project, reader_a, reader_b, reader_c):
    extra = _readers(project, ["reader_d", "reader_e", "reader_f"])
    project.protocol.readers_per_case = 2
    project.protocol.reading_days = 10
    project.protocol.save()
    cases = [_qc_case(project, f"B{i:02d}") for i in range(9)]
    before = timezone.now()
    report = assignment.assign_project(project)
    assert report.assigned_tasks == 18
    assert sorted(report.filled_cases) == [c.code for c in cases]
    for case in cases:
        readers = list(_reads(case).values_list("reader_id", flat=True))
        assert len(readers) == 2 and len(set(readers)) == 2
        case.refresh_from_db()
        assert case.state == Case.State.READING
    load = Counter(
        ReadingTask.objects.filter(case__project=project).values_list("reader_id", flat=True)
    )
    everyone = [reader_a, reader_b, reader_c, *extra]
    assert {load[u.pk] for u in everyone} == {3}
    due = ReadingTask.objects.filter(case__project=project).values_list("due_at", flat=True)
    for value in due:
        assert before + timedelta(days=10) <= value <= timezone.now() + timedelta(days=10)
    assert AuditEvent.objects.filter(action="case.assigned").count() == 9


def test_least_loaded_reader_goes_first_with_deterministic_ties(
    project, reader_a, reader_b, reader_c
):
    project.protocol.readers_per_case = 1
    project.protocol.save()
    busy = _qc_case(project, "BUSY", state=Case.State.READING)
    factories.TaskFactory(case=busy, reader=reader_a)
    factories.TaskFactory(
        case=_qc_case(project, "BUSY2", state=Case.State.READING), reader=reader_b
    )
    new = _qc_case(project, "NEW")
    assignment.assign_project(project)
    assert list(_reads(new).values_list("reader_id", flat=True)) == [reader_c.pk]
    # ties are broken by user id, so the same input gives the same output
    tied = _qc_case(project, "TIED")
    assignment.assign_project(project)
    assert list(_reads(tied).values_list("reader_id", flat=True)) == [reader_a.pk]


def test_failed_qc_is_never_assigned(project):
    failed = _qc_case(project, "FAIL", qc_status=Case.QcStatus.FAIL)
    pending = _qc_case(project, "PEND", qc_status=Case.QcStatus.PENDING)
    warned = _qc_case(project, "WARN", qc_status=Case.QcStatus.WARN)
    overridden = _qc_case(project, "OVR", qc_status=Case.QcStatus.OVERRIDDEN)
    report = assignment.assign_project(project)
    assert sorted(report.filled_cases) == ["OVR", "WARN"]
    for case in (failed, pending):
        assert not ReadingTask.objects.filter(case=case).exists()
        case.refresh_from_db()
        assert case.state == Case.State.QC
    for case in (warned, overridden):
        assert _reads(case).count() == 3


def test_own_site_readers_are_excluded_when_the_protocol_says_so(project, site):
    other = factories.SiteFactory(code="S02", name="第二医院")
    outside = _readers(project, ["far_1", "far_2", "far_3"], site=other)
    project.protocol.exclude_own_site = True
    project.protocol.save()
    case = _qc_case(project, "OWN", site=site)  # reader_a/b/c work at S01
    assignment.assign_project(project)
    assert set(_reads(case).values_list("reader_id", flat=True)) == {u.pk for u in outside}


def test_own_site_readers_may_read_when_the_protocol_allows(project, site, reader_a):
    case = _qc_case(project, "OWN", site=site)
    assignment.assign_project(project)
    assert reader_a.pk in set(_reads(case).values_list("reader_id", flat=True))


def test_unfilled_case_is_reported_with_the_reason_and_left_alone(project, site):
    project.protocol.exclude_own_site = True
    project.protocol.save()
    case = _qc_case(project, "LONELY", site=site)
    report = assignment.assign_project(project)
    assert report.filled_cases == []
    [item] = report.unfilled
    assert item["case"] == "LONELY" and item["needed"] == 3 and item["eligible"] == 0
    assert item["excluded_own_site"] == 3
    assert "own site" in item["reason"]
    assert not ReadingTask.objects.filter(case=case).exists()
    case.refresh_from_db()
    assert case.state == Case.State.QC  # not half-assigned, not moved to reading


def test_an_arbitrator_is_never_one_of_the_cases_readers(project, reader_a, reader_b, arbitrator):
    # the arbitrator also holds the reader role: still never a reader
    grant_role(project, arbitrator, Role.READER)
    _readers(project, ["reader_d"])
    cases = [_qc_case(project, f"A{i}") for i in range(4)]
    assignment.assign_project(project)
    for case in cases:
        assert arbitrator.pk not in set(_reads(case).values_list("reader_id", flat=True))


def test_the_cases_arbitrator_is_excluded_from_its_reads(project, reader_a):
    _readers(project, ["reader_d"])
    case = _qc_case(project, "ARB")
    ArbitrationTask.objects.create(case=case, arbitrator=reader_a)
    assignment.assign_project(project)
    readers = set(_reads(case).values_list("reader_id", flat=True))
    assert len(readers) == 3 and reader_a.pk not in readers


def test_rerun_is_idempotent(project):
    cases = [_qc_case(project, f"I{i}") for i in range(3)]
    first = assignment.assign_project(project)
    ids = set(ReadingTask.objects.values_list("id", flat=True))
    second = assignment.assign_project(project)
    assert first.assigned_tasks == 9
    assert second.assigned_tasks == 0 and second.already_full == 3
    assert set(ReadingTask.objects.values_list("id", flat=True)) == ids
    assert all(_reads(c).count() == 3 for c in cases)


def test_rerun_tops_up_a_case_short_of_readers(project, reader_a):
    _readers(project, ["reader_d"])
    case = _qc_case(project, "TOP", state=Case.State.READING)
    factories.TaskFactory(case=case, reader=reader_a)
    report = assignment.assign_project(project)
    assert report.assigned_tasks == 2
    readers = list(_reads(case).values_list("reader_id", flat=True))
    assert len(set(readers)) == 3 and reader_a.pk in readers


def test_qualification_cases_are_never_assigned(project):
    case = _qc_case(project, "QUAL")
    Case.objects.filter(pk=case.pk).update(is_qualification=True)
    assert assignment.assign_project(project).filled_cases == []
    assert not ReadingTask.objects.filter(case=case).exists()


def test_unqualified_readers_are_gated_while_a_test_is_active(project, reader_a, reader_b):
    QualificationTest.objects.create(project=project, name="Q", active=True)
    case = _qc_case(project, "GATE")
    report = assignment.assign_project(project)
    assert report.qualification_required and report.unfilled[0]["reason"] == (
        "no qualified readers"
    )
    assert not ReadingTask.objects.filter(case=case).exists()
    Membership.objects.filter(project=project, role=Role.READER).update(qualified=True)
    project.protocol.readers_per_case = 2
    project.protocol.save()
    Membership.objects.filter(project=project, user=reader_b).update(qualified=False)
    assignment.assign_project(project)
    readers = set(_reads(case).values_list("reader_id", flat=True))
    assert reader_b.pk not in readers and len(readers) == 2


def test_without_an_active_test_every_reader_is_eligible(project):
    QualificationTest.objects.create(project=project, name="old", active=False)
    case = _qc_case(project, "OPEN")
    assert not assignment.qualification_required(project)
    assignment.assign_project(project)
    assert _reads(case).count() == 3


def _drafted(case, reader):
    task = factories.TaskFactory(case=case, reader=reader, state="in_progress")
    Finding.objects.create(
        task=task,
        finding_type="nodule",
        geometry=factories.nodule_geometry(),
        attributes=factories.complete_nodule_attributes(),
    )
    CaseLabel.objects.create(task=task, values={"nodules_present": True})
    return task


def test_reassign_moves_an_unsubmitted_read_and_discards_the_draft(
    project, case, reader_a, reader_b, manager
):
    newcomer = _readers(project, ["reader_d"])[0]
    task = _drafted(case, reader_a)
    new = assignment.reassign(task, newcomer, by=manager)
    assert new.reader == newcomer and new.phase == 1 and new.state == "assigned"
    assert new.due_at is not None
    assert not ReadingTask.objects.filter(pk=task.pk).exists()
    assert not Finding.objects.filter(task_id=task.pk).exists()
    event = AuditEvent.objects.get(action="read.reassigned")
    assert event.data["from_reader"] == reader_a.pk and event.data["to_reader"] == newcomer.pk
    assert event.data["discarded_findings"] == 1 and event.actor_id == manager.pk


def test_reassign_refuses_ineligible_readers_and_submitted_reads(
    project, case, tasks, reader_b, arbitrator, manager, reader_a
):
    from django.core.exceptions import PermissionDenied, ValidationError

    outsider = factories.UserFactory(username="nobody")
    for who in (reader_b, arbitrator, outsider):  # already reading / arbitrator / no role
        with pytest.raises(ValidationError):
            assignment.reassign(tasks["reader_a"], who, by=manager)
    newcomer = _readers(project, ["reader_d"])[0]
    ReadingTask.objects.filter(pk=tasks["reader_c"].pk).update(state="submitted")
    with pytest.raises(ValidationError):
        assignment.reassign(tasks["reader_c"], newcomer, by=manager)
    with pytest.raises(PermissionDenied):
        assignment.reassign(tasks["reader_a"], newcomer, by=reader_a)
    assert ReadingTask.objects.filter(case=case).count() == 3


def test_assign_job_reports_and_moves_cases(project, manager):
    from annotation_server.jobs import services as jobs

    _qc_case(project, "J1")
    _qc_case(project, "J2", qc_status=Case.QcStatus.FAIL)
    job = assignment.enqueue_assignment(project, by=manager)
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.result["filled_cases"] == ["J1"] and job.result["assigned_tasks"] == 3
    assert "3 reads assigned on 1 cases" in job.log
    assert Case.objects.get(project=project, code="J1").state == Case.State.READING


@pytest.mark.celery
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_assignment_job_runs_in_a_real_worker(celery_worker, project, manager):
    cases = [_qc_case(project, f"W{i}") for i in range(2)]
    job = assignment.enqueue_assignment(project, by=manager)  # autocommit: dispatched now
    wait_for_job(job, celery_worker)
    assert job.worker
    assert sorted(job.result["filled_cases"]) == ["W0", "W1"]
    for case in cases:
        case.refresh_from_db()
        assert case.state == Case.State.READING and _reads(case).count() == 3


# ------------------------------------------------------------------ page and API


def test_assignment_page_shows_load_reads_and_the_gate(client, project, case, tasks, manager):
    ReadingTask.objects.filter(pk=tasks["reader_b"].pk).update(
        state="in_progress", due_at=timezone.now() - timedelta(days=1)
    )
    client.force_login(manager)
    html = client.get(f"/projects/{project.slug}/assignments/", HTTP_ACCEPT_LANGUAGE="en")
    assert html.status_code == 200
    text = html.content.decode()
    assert "no active qualification test" in text
    assert tasks["reader_a"].reader.profile.pseudonym in text
    assert 'data-col="overdue">1<' in text
    assert f'data-task="{tasks["reader_a"].pk}"' in text


def test_assignment_page_is_for_managers_only(client, project, reader_a):
    client.force_login(reader_a)
    assert client.get(f"/projects/{project.slug}/assignments/").status_code == 403
    assert client.post(f"/projects/{project.slug}/assignments/run/").status_code == 403


def test_run_button_enqueues_the_job(client, project, manager):
    from annotation_server.jobs import services as jobs

    _qc_case(project, "P1")
    client.force_login(manager)
    response = client.post(f"/projects/{project.slug}/assignments/run/")
    assert response.status_code == 302
    job = Job.objects.get(kind="projects.assign")
    assert job.created_by == manager and job.params == {"project_id": project.pk}
    jobs.execute(job.pk)  # what the worker does once the transaction commits
    page = client.get(f"/projects/{project.slug}/assignments/", HTTP_ACCEPT_LANGUAGE="en")
    assert "3 reads assigned on 1 cases" in page.content.decode()


def test_reassign_form(client, project, case, tasks, manager):
    newcomer = _readers(project, ["reader_d"])[0]
    client.force_login(manager)
    response = client.post(
        f"/projects/{project.slug}/assignments/{tasks['reader_a'].pk}/reassign/",
        {"reader": newcomer.pk},
    )
    assert response.status_code == 302
    assert _reads(case).filter(reader=newcomer).exists()
    assert not _reads(case).filter(reader=tasks["reader_a"].reader).exists()


def test_api_overview_run_and_reassign(client_for, project, case, tasks, manager, reader_a):
    api = client_for(manager)
    body = api.get(f"/api/v1/projects/{project.slug}/assignments/").json()
    assert body["readers_per_case"] == 3 and not body["qualification_required"]
    assert [r["state"] for r in body["cases"][0]["reads"]] == ["assigned"] * 3
    assert (
        client_for(reader_a).get(f"/api/v1/projects/{project.slug}/assignments/").status_code == 403
    )
    run = api.post(f"/api/v1/projects/{project.slug}/assignments/run/")
    assert run.status_code == 202 and run.json()["kind"] == "projects.assign"
    newcomer = _readers(project, ["reader_d"])[0]
    moved = api.post(
        f"/api/v1/projects/{project.slug}/assignments/reassign/",
        {"task": tasks["reader_a"].pk, "reader": newcomer.pk},
        format="json",
    )
    assert moved.status_code == 201, moved.json()
    refused = api.post(
        f"/api/v1/projects/{project.slug}/assignments/reassign/",
        {"task": tasks["reader_b"].pk, "reader": newcomer.pk},
        format="json",
    )
    assert refused.status_code == 400


def test_reassign_options_match_the_single_task_rule(project, site, manager):
    other = factories.SiteFactory(code="S02", name="第二医院")
    _readers(project, ["far_1"], site=other)
    _readers(project, ["near_1"], site=site)
    project.protocol.exclude_own_site = True
    project.protocol.save()
    cases = [_qc_case(project, f"O{i}", site=other) for i in range(2)]
    assignment.assign_project(project)
    options = assignment.reassign_options(project)
    tasks = ReadingTask.objects.filter(case__in=cases)
    assert set(options) == set(tasks.values_list("pk", flat=True))
    for task in tasks:
        expected = [u.pk for u in assignment.reassign_candidates(task)]
        assert [u.pk for u in options[task.pk]] == expected
        assert all(u.profile.site_id != other.pk for u in options[task.pk])


def test_assignment_page_queries_do_not_grow_with_cases(client, project, manager):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(manager)
    url = f"/projects/{project.slug}/assignments/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    _qc_case(project, "N0")
    assignment.assign_project(project)
    few = queries()
    for i in range(1, 8):
        _qc_case(project, f"N{i}")
    assignment.assign_project(project)
    assert queries() == few
