"""Settling a case: matching the final reads, the auto-consensus rule, and where
the case goes next."""

from __future__ import annotations

import pytest

from annotation_server.adjudication import services
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.models import Case
from tests.adjudication.conftest import add_finding, ellipse, submit_all
from tests.worker import wait_for_job

AGREED = {"nodules_present": True, "image_quality": 3}


def labels_all(values=AGREED):
    return {name: dict(values) for name in ("reader_a", "reader_b", "reader_c")}


@pytest.mark.django_db
def test_three_readers_agreeing_are_auto_accepted_and_the_case_is_adjudicated(
    grid_case, tasks, protocol
):
    for offset, task in zip((0, 2, 4), tasks.values(), strict=True):
        add_finding(task, ellipse(200 + offset, 220, [10, 11, 12]))
    submit_all(tasks, labels_all())
    settlement = services.settle_case(grid_case.pk)
    grid_case.refresh_from_db()
    assert settlement.outcome == Settlement.Outcome.ADJUDICATED
    assert grid_case.state == Case.State.ADJUDICATED
    (cluster,) = Cluster.objects.filter(case=grid_case)
    assert cluster.verdict == Cluster.Verdict.ACCEPT
    assert cluster.readers == 3
    assert (cluster.match_rule, cluster.match_threshold) == ("centre_distance", 5.0)
    (ref,) = ReferenceFinding.objects.filter(case=grid_case)
    assert ref.decision == ReferenceFinding.Decision.AUTO_CONSENSUS
    assert ref.match_rule == "centre_distance" and ref.match_threshold == 5.0
    assert ref.supporting_findings.count() == 3
    assert ref.geometry["kind"] == "contour"
    assert ref.geometry["consensus"]["method"] == "majority"
    # Consensus of three 12-pixel-wide ellipses shifted 0/2/4 px: about 12 px * 0.7 mm.
    assert 7.0 < ref.diameter_mm < 10.0
    # measured when written (a freeze copies these instead of reading pixels)
    m = ref.measurements
    assert m["axes_from"] == "contour" and m["units"]["length"] == "mm"
    assert 7.0 < m["long_axis"] < 10.0 and m["short_axis"] <= m["long_axis"]
    assert m["area"] > 0
    assert ReferenceLabels.objects.get(case=grid_case, is_current=True).values == AGREED
    assert AuditEvent.objects.filter(action="adjudication.settled").exists()
    assert not ArbitrationTask.objects.filter(case=grid_case).exists()


@pytest.mark.django_db
def test_settling_twice_changes_nothing(grid_case, tasks, protocol):
    add_finding(tasks["reader_a"], ellipse(200, 220, [10]))
    submit_all(tasks, labels_all())
    first = services.settle_case(grid_case.pk)
    counts = (
        Cluster.objects.count(),
        ReferenceFinding.objects.count(),
        ArbitrationTask.objects.count(),
        AuditEvent.objects.count(),
    )
    again = services.settle_case(grid_case.pk)
    assert again.pk == first.pk
    assert counts == (
        Cluster.objects.count(),
        ReferenceFinding.objects.count(),
        ArbitrationTask.objects.count(),
        AuditEvent.objects.count(),
    )


@pytest.mark.django_db
def test_single_reader_mark_is_dropped_two_of_three_is_disputed(grid_case, tasks, protocol):
    protocol.drop_below_readers = 2
    protocol.save()
    a, b, c = tasks.values()
    add_finding(a, ellipse(100, 100, [5]))
    add_finding(b, ellipse(101, 100, [5]))
    add_finding(c, ellipse(300, 300, [20]))  # alone, far away
    submit_all(tasks, labels_all())
    settlement = services.settle_case(grid_case.pk)
    verdicts = sorted(Cluster.objects.values_list("readers", "verdict"))
    assert verdicts == [(1, "drop"), (2, "dispute")]
    disputed = Cluster.objects.get(verdict="dispute")
    assert disputed.reasons[0] == {"code": "existence", "readers": 2, "of": 3, "needed": 3}
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ARBITRATION
    assert settlement.outcome == Settlement.Outcome.ARBITRATION
    (task,) = ArbitrationTask.objects.filter(case=grid_case)
    assert task.role == ArbitrationTask.Role.SOLE
    assert task.items == {"clusters": [disputed.pk], "labels": []}
    assert not ReferenceFinding.objects.exists()


@pytest.mark.django_db
def test_attribute_disagreement_disputes_a_cluster_all_readers_marked(grid_case, tasks, protocol):
    a, b, c = tasks.values()
    add_finding(a, ellipse(100, 100, [5]), nodule_type="solid", malignancy=2)
    add_finding(b, ellipse(101, 100, [5]), nodule_type="part_solid", malignancy=3)
    add_finding(c, ellipse(100, 101, [5]), nodule_type="solid", malignancy=5)
    submit_all(tasks, labels_all())
    services.settle_case(grid_case.pk)
    cluster = Cluster.objects.get()
    assert cluster.verdict == "dispute"
    keys = {r.get("key") for r in cluster.reasons if r["code"] == "attribute"}
    assert keys == {"nodule_type", "malignancy"}
    assert not any(r["code"] == "existence" for r in cluster.reasons)


@pytest.mark.django_db
def test_ordinal_within_tolerance_still_accepts(grid_case, tasks, protocol):
    for score, task in zip((3, 4, 3), tasks.values(), strict=True):
        add_finding(task, ellipse(100, 100, [5]), malignancy=score)
    submit_all(tasks, labels_all())
    services.settle_case(grid_case.pk)
    assert Cluster.objects.get().verdict == "accept"
    assert ReferenceFinding.objects.get().attributes["malignancy"] == 3


@pytest.mark.django_db
def test_case_label_disagreement_goes_to_arbitration(grid_case, tasks, protocol):
    for task in tasks.values():
        add_finding(task, ellipse(100, 100, [5]))
    labels = labels_all()
    labels["reader_c"]["image_quality"] = 2
    submit_all(tasks, labels)
    settlement = services.settle_case(grid_case.pk)
    assert [d["key"] for d in settlement.label_disputes] == ["image_quality"]
    assert Cluster.objects.get().verdict == "accept"
    task = ArbitrationTask.objects.get(case=grid_case)
    assert task.items == {"clusters": [], "labels": ["image_quality"]}
    assert ReferenceFinding.objects.filter(decision="auto_consensus").count() == 1


@pytest.mark.django_db
def test_arbitrators_never_read_the_case_and_are_load_balanced(
    grid_case, tasks, two_blind, reader_a, project, arbitrator, arbitrator_b, arbitrator_c
):
    from annotation_server.accounts.models import Role
    from annotation_server.projects.services import grant_role

    grant_role(project, reader_a, Role.ARBITRATOR)  # a reader of this case: never chosen
    busy = ArbitrationTask.objects.create(
        case=__import__("tests.factories", fromlist=["x"]).CaseFactory(
            project=project, state="arbitration"
        ),
        arbitrator=arbitrator,
    )
    add_finding(tasks["reader_a"], ellipse(100, 100, [5]))
    submit_all(tasks, labels_all())
    services.settle_case(grid_case.pk)
    chosen = {t.role: t.arbitrator for t in ArbitrationTask.objects.filter(case=grid_case)}
    assert set(chosen) == {"first", "second"}
    assert reader_a not in chosen.values()
    assert arbitrator not in chosen.values()  # has an open task already
    assert busy.arbitrator == arbitrator
    assert set(chosen.values()) == {arbitrator_b, arbitrator_c}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_reads_complete_queues_the_settle_job_which_a_worker_runs(
    celery_worker, grid_case, tasks, protocol, manager
):
    for task in tasks.values():
        add_finding(task, ellipse(100, 100, [5]))
    submit_all(tasks, labels_all())
    job = services.reads_complete(grid_case, manager)  # autocommit: dispatched now
    assert job.params == {"case_id": grid_case.pk}
    wait_for_job(job, celery_worker)
    assert job.result["outcome"] == "adjudicated"
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED


@pytest.mark.django_db
def test_settle_refuses_while_a_read_is_open(grid_case, tasks, protocol):
    submit_all({"reader_a": tasks["reader_a"]})
    with pytest.raises(services.SettleError):
        services.settle_case(grid_case.pk)
    assert not Settlement.objects.exists()
