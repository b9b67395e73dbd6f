"""Nothing stuck (issue 12, "Run a project"): each way a case can stall is driven
to adjudicated through the manager's console, over a real session login:

- a phase-1 reader leaves: their read moves to another eligible reader;
- a review-phase reader leaves: the review moves, with the blind marks to review;
- an arbitrator of each role (sole, first, second, tie-break) leaves: the task
  moves to another arbitrator who did not read the case and holds no other task
  of the round;
- a read never comes: the manager settles by force, with a reason.

Each action is audited; the protocol's rules (distinct readers, arbitrators are
never readers, own site excluded) hold for every candidate offered."""

from __future__ import annotations

import pytest

from annotation_server.accounts.models import Role
from annotation_server.adjudication import services
from annotation_server.adjudication.models import ArbitrationTask, Settlement
from annotation_server.adjudication.services import console as adjudication_console
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role, revoke_role
from annotation_server.reading import console as reading_console
from annotation_server.reading import services as reading
from annotation_server.reading.models import Finding, ReadingTask
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse
from tests.adjudication.test_arbitration import decide, disputed_case
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db

LABELS = {"nodules_present": True, "image_quality": 3}


@pytest.fixture
def reader_d(project, site):
    user = factories.UserFactory(username="reader_d", profile__site=site)
    grant_role(project, user, Role.READER)
    return user


@pytest.fixture
def arbitrator_d(project, site):
    user = factories.UserFactory(username="arbitrator_d", profile__site=site)
    grant_role(project, user, Role.ARBITRATOR)
    return user


def read_and_submit(task, col=100.0):
    """One read through the reading services: a nodule at (col, 100), labels, submit."""
    add_finding(task, ellipse(col, 100, [5, 6]))
    reading.save_case_label(task, task.reader, dict(LABELS), expected_version=None)
    return reading.submit(task, task.reader, expected_version=None)


def settle(case):
    """What the "adjudication.settle" job does once the last read is in."""
    services.settle_case(case.pk)
    case.refresh_from_db()
    return case


def sign(task, decisions):
    task.refresh_from_db()
    saved = services.save_decisions(task, task.arbitrator, decisions, expected_version=task.version)
    return services.sign(task, task.arbitrator, PASSWORD, expected_version=saved.version)


# ------------------------------------------------------------------ readers


def test_a_blind_reader_who_left_is_replaced_and_the_case_is_adjudicated(
    grid_case, tasks, protocol, manager, reader_c, reader_d, session_client_for
):
    read_and_submit(tasks["reader_a"])
    read_and_submit(tasks["reader_b"], 101)
    revoke_role(grid_case.project, reader_c, Role.READER, by=manager)
    stuck = reading_console.stuck_reads(grid_case.project)
    assert [(s["task_id"], s["reader_gone"]) for s in stuck] == [(tasks["reader_c"].pk, True)]

    api = session_client_for(manager)
    overview = api.get("/api/v1/projects/lung/overview/").json()
    row = next(r for r in overview["stuck_reads"] if r["task_id"] == tasks["reader_c"].pk)
    # reader_a and reader_b read the case already: only reader_d may take it
    assert [c["id"] for c in row["candidates"]] == [reader_d.pk]

    moved = api.post(
        "/api/v1/projects/lung/assignments/reassign/",
        {"task": tasks["reader_c"].pk, "reader": reader_d.pk, "reason": "left the hospital"},
        format="json",
    )
    assert moved.status_code == 201, moved.content
    event = AuditEvent.objects.get(action="read.reassigned")
    assert event.data["reason"] == "left the hospital" and event.data["phase"] == 1
    new = ReadingTask.objects.get(pk=moved.json()["task"])
    assert new.reader == reader_d and new.phase == 1
    read_and_submit(new, 102)
    assert settle(grid_case).state == Case.State.ADJUDICATED
    readers = set(
        Finding.objects.filter(clusters__case=grid_case).values_list("task__reader", flat=True)
    )
    assert reader_d.pk in readers and reader_c.pk not in readers


def test_a_review_phase_reader_who_left_is_replaced_with_the_blind_marks_to_review(
    grid_case, tasks, protocol, manager, reader_a, reader_c, reader_d, session_client_for
):
    protocol.review_phase = True
    protocol.save()
    for i, task in enumerate(tasks.values()):
        read_and_submit(task, 100 + i)
    review = {t.reader_id: t for t in ReadingTask.objects.filter(case=grid_case, phase=2)}
    assert len(review) == 3
    for reader in ("reader_a", "reader_b"):
        task = review[tasks[reader].reader_id]
        reading.submit(task, task.reader, expected_version=None)
    revoke_role(grid_case.project, reader_c, Role.READER, by=manager)
    gone = review[reader_c.pk]

    web = session_client_for(manager)
    page = web.get("/projects/lung/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    assert f'data-task="{gone.pk}"' in page.content.decode()  # listed as stuck
    answer = web.post(
        f"/projects/lung/assignments/{gone.pk}/reassign/",
        {"reader": reader_d.pk, "reason": "on leave", "next": "/projects/lung/"},
    )
    assert answer.status_code == 302 and answer["Location"] == "/projects/lung/"
    new = ReadingTask.objects.get(case=grid_case, phase=2, reader=reader_d)
    blind_c = tasks["reader_c"]
    copies = list(new.findings.all())
    assert [f.derived_from_id for f in copies] == list(
        blind_c.findings.values_list("pk", flat=True)
    )
    assert new.case_label.values == LABELS
    assert not ReadingTask.objects.filter(pk=gone.pk).exists()
    event = AuditEvent.objects.get(action="read.reassigned")
    assert event.data["phase"] == 2 and event.data["review_of_blind_read"] == blind_c.pk
    # Blindness as the review phase gives it: the other blind reads, not their reviews.
    visible = ReadingTask.objects.visible_to(reader_d).filter(case=grid_case)
    assert set(visible.values_list("phase", flat=True)) == {1, 2}
    assert not visible.filter(phase=2).exclude(reader=reader_d).exists()
    # reader_d cannot take a second read of the case: distinct readers
    assert reader_d.pk not in {u.pk for u in reading_console_candidates(new)}

    reading.submit(new, reader_d, expected_version=None)
    case = settle(grid_case)
    assert case.state == Case.State.ADJUDICATED
    settlement = Settlement.objects.get(case=grid_case)
    assert settlement.phase == 2
    final = set(
        Finding.objects.filter(clusters__case=grid_case).values_list("task__reader", flat=True)
    )
    assert reader_d.pk in final and reader_c.pk not in final


def reading_console_candidates(task):
    from annotation_server.reading import assignment

    return assignment.reassign_candidates(task)


def test_reassignment_keeps_own_site_readers_off_the_case(
    grid_case, tasks, protocol, manager, reader_c, reader_d, session_client_for
):
    protocol.exclude_own_site = True
    protocol.save()
    grid_case.site = reader_d.profile.site
    grid_case.save()
    api = session_client_for(manager)
    refused = api.post(
        "/api/v1/projects/lung/assignments/reassign/",
        {"task": tasks["reader_c"].pk, "reader": reader_d.pk},
        format="json",
    )
    assert refused.status_code == 400
    assert ReadingTask.objects.filter(pk=tasks["reader_c"].pk, reader=reader_c).exists()
    assert not AuditEvent.objects.filter(action="read.reassigned").exists()


# ------------------------------------------------------------------ arbitrators


def test_a_sole_arbitrator_who_left_is_replaced_and_the_case_is_adjudicated(
    grid_case, tasks, protocol, manager, arbitrator, arbitrator_d, session_client_for
):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    services.save_decisions(task, arbitrator, decide(clusters), expected_version=task.version)
    revoke_role(grid_case.project, arbitrator, Role.ARBITRATOR, by=manager)
    stuck = adjudication_console.stuck_arbitrations(grid_case.project)
    assert [(s["task_id"], s["arbitrator_gone"]) for s in stuck] == [(task.pk, True)]
    assert [u.pk for u in stuck[0]["candidates"]] == [arbitrator_d.pk]

    api = session_client_for(manager)
    moved = api.post(
        "/api/v1/projects/lung/arbitration/reassign/",
        {"task": task.pk, "arbitrator": arbitrator_d.pk, "reason": "retired"},
        format="json",
    )
    assert moved.status_code == 200, moved.content
    task.refresh_from_db()
    assert task.arbitrator == arbitrator_d and task.decisions == {}
    assert task.state == ArbitrationTask.State.ASSIGNED
    event = AuditEvent.objects.get(action="arbitration.reassigned")
    assert event.data["discarded_decisions"] == 2 and event.data["reason"] == "retired"
    sign(task, decide(clusters))
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED


@pytest.mark.parametrize("role", ["first", "second", "tiebreak"])
def test_a_blind_or_tiebreak_arbitrator_who_left_is_replaced(
    role, grid_case, tasks, two_blind, manager, arbitrator_d, session_client_for
):
    clusters = disputed_case(grid_case, tasks)
    pair = {t.role: t for t in ArbitrationTask.objects.filter(case=grid_case)}
    if role == "tiebreak":
        sign(pair["first"], decide(clusters))
        sign(pair["second"], decide(clusters, type_for_three="solid"))
        pair = {t.role: t for t in ArbitrationTask.objects.filter(case=grid_case)}
    task = pair[role]
    leaving = task.arbitrator
    revoke_role(grid_case.project, leaving, Role.ARBITRATOR, by=manager)
    others = {t.arbitrator_id for t in pair.values() if t.pk != task.pk}
    candidates = {u.pk for u in adjudication_console.arbitration_candidates(task)}
    assert arbitrator_d.pk in candidates and leaving.pk not in candidates
    assert not candidates & others  # distinct from the round's other arbitrators
    readers = set(ReadingTask.objects.filter(case=grid_case).values_list("reader", flat=True))
    assert not candidates & readers  # arbitrators never read the case

    # The other blind arbitrator cannot take the task: refused, nothing changes.
    if role in ("first", "second"):
        other = next(iter(others))
        refused = session_client_for(manager).post(
            "/api/v1/projects/lung/arbitration/reassign/",
            {"task": task.pk, "arbitrator": other},
            format="json",
        )
        assert refused.status_code == 400
        task.refresh_from_db()
        assert task.arbitrator == leaving

    web = session_client_for(manager)
    answer = web.post(
        f"/projects/lung/arbitration/{task.pk}/reassign/",
        {"arbitrator": arbitrator_d.pk, "reason": "conflict of interest"},
    )
    assert answer.status_code == 302
    task.refresh_from_db()
    assert task.arbitrator == arbitrator_d
    assert AuditEvent.objects.get(action="arbitration.reassigned").data["role"] == role
    if role == "tiebreak":
        key = str(clusters[3].pk)
        sign(task, {"clusters": {key: decide(clusters)["clusters"][key]}})
    else:
        for t in ArbitrationTask.objects.filter(case=grid_case):
            sign(t, decide(clusters))
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED


# ------------------------------------------------------------------ forced settle


def test_a_read_that_never_comes_is_settled_by_force_then_arbitrated(
    grid_case, tasks, protocol, manager, arbitrator, session_client_for
):
    read_and_submit(tasks["reader_a"])
    read_and_submit(tasks["reader_b"], 101)
    draft = tasks["reader_c"]
    add_finding(draft, ellipse(300, 300, [20]))
    api = session_client_for(manager)
    url = f"/api/v1/projects/lung/cases/{grid_case.pk}/force-settle/"
    assert api.post(url, {"reason": ""}, format="json").status_code == 400
    assert not Settlement.objects.filter(case=grid_case).exists()

    forced = api.post(url, {"reason": "reader_c unreachable for 3 weeks"}, format="json")
    assert forced.status_code == 200, forced.content
    settlement = Settlement.objects.get(case=grid_case)
    assert settlement.protocol["forced"] == "reader_c unreachable for 3 weeks"
    event = AuditEvent.objects.get(action="adjudication.forced_settle")
    assert event.data["reads"] == [tasks["reader_a"].pk, tasks["reader_b"].pk]
    assert event.data["discarded_open_reads"][0]["findings"] == 1
    assert not ReadingTask.objects.filter(pk=draft.pk).exists()
    grid_case.refresh_from_db()
    # Two reads where the rule asks three to agree: the finding goes to arbitration.
    assert grid_case.state == Case.State.ARBITRATION
    task = ArbitrationTask.objects.get(case=grid_case)
    (cluster,) = settlement.clusters.all()
    assert cluster.readers == 2
    sign(
        task,
        {
            "clusters": {
                str(cluster.pk): {"action": "accept_merged", "reason_code": "existence_confirmed"}
            },
            "labels": {},
        },
    )
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    # settling twice is refused
    assert api.post(url, {"reason": "again"}, format="json").status_code == 409


def test_forced_settle_with_nothing_submitted_is_refused(
    grid_case, tasks, protocol, manager, session_client_for
):
    api = session_client_for(manager)
    url = f"/api/v1/projects/lung/cases/{grid_case.pk}/force-settle/"
    answer = api.post(url, {"reason": "try"}, format="json")
    assert answer.status_code == 409
    assert ReadingTask.objects.filter(case=grid_case).count() == 3  # nothing discarded
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.READING


# ------------------------------------------------------------------ withdraw


def test_a_withdrawn_case_keeps_its_reads_is_flagged_and_never_assigned(
    grid_case, tasks, protocol, manager, reader_a, reader_d, session_client_for
):
    from annotation_server.reading import assignment

    read_and_submit(tasks["reader_a"])
    api = session_client_for(manager)
    url = f"/api/v1/projects/lung/cases/{grid_case.pk}/withdraw/"
    assert api.post(url, {"reason": " "}, format="json").status_code == 400
    answer = api.post(url, {"reason": "wrong series: scout only"}, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["flags"][0]["kind"] == "withdrawn"
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.QC
    assert ReadingTask.objects.filter(case=grid_case).count() == 3  # kept
    assert AuditEvent.objects.filter(action="case.withdrawn").count() == 1
    assert AuditEvent.objects.filter(action="case.flagged", data__kind="withdrawn").exists()
    # never assigned again while withdrawn
    assert assignment.candidate_cases(grid_case.project).filter(pk=grid_case.pk).count() == 0
    # the reader sees the flag on the worklist and cannot go on writing
    reader_web = session_client_for(tasks["reader_b"].reader)
    worklist = reader_web.get("/worklist/?state=all", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "withdrawn from reading" in worklist
    with pytest.raises(Exception, match="no longer open for reading"):
        add = reading.save_finding
        add(
            tasks["reader_b"],
            tasks["reader_b"].reader,
            finding_type="nodule",
            geometry=ellipse(100, 100, [5]),
            attributes=factories.complete_nodule_attributes(),
        )

    back = api.post(
        f"/api/v1/projects/lung/cases/{grid_case.pk}/return/",
        {"reason": "right series found"},
        format="json",
    )
    assert back.status_code == 200 and back.json()["flags"] == []
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.READING
    assert AuditEvent.objects.filter(action="case.returned_to_reading").count() == 1


def test_a_case_whose_settle_failed_is_listed_and_a_forced_settle_retries(
    grid_case, tasks, protocol, manager, session_client_for
):
    from tests.adjudication.conftest import submit_all

    for i, task in enumerate(tasks.values()):
        add_finding(task, ellipse(100 + i, 100, [5, 6]))
    submit_all(tasks, {n: dict(LABELS) for n in tasks})  # reads in, the settle job lost
    project = grid_case.project
    assert adjudication_console.unsettled_cases(project) == [grid_case]
    listed = session_client_for(manager).get("/api/v1/projects/lung/overview/").json()
    assert listed["unsettled"] == [{"id": grid_case.pk, "code": grid_case.code}]
    answer = session_client_for(manager).post(
        f"/api/v1/projects/lung/cases/{grid_case.pk}/force-settle/",
        {"reason": "settle job failed overnight"},
        format="json",
    )
    assert answer.status_code == 200 and answer.json()["state"] == Case.State.ADJUDICATED
    assert adjudication_console.unsettled_cases(project) == []
    event = AuditEvent.objects.get(action="adjudication.forced_settle")
    assert event.data["discarded_open_reads"] == []
