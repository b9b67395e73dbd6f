"""The protocol's consensus rule for contours (issue 12): majority vote or STAPLE,
chosen per project. A case settled under STAPLE gets the STAPLE contour as its
reference; in arbitration "accept merged" signs the protocol's rule unless the
arbitrator picks the other one, and the arbitrator's page shows that shape."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation_server.adjudication import services
from annotation_server.adjudication.marks import grid_for_series, mark_for_finding
from annotation_server.adjudication.models import ArbitrationTask, Cluster, ReferenceFinding
from annotation_server.projects.models import Case, ReadingProtocol
from qc import consensus as qc_consensus
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse, submit_all
from tests.adjudication.test_arbitration_pages import bootstrap
from tests.adjudication.test_console_stuck import sign

pytestmark = pytest.mark.django_db

LABELS = {"nodules_present": True, "image_quality": 3}


def test_the_protocol_offers_exactly_the_consensus_methods_of_qc():
    assert tuple(ReadingProtocol.ConsensusMethod.values) == qc_consensus.METHODS
    assert ReadingProtocol().consensus_method == "majority"


def two_readers_mark_one_nodule(grid_case, tasks) -> list:
    """R1 and R2 outline the same nodule, 6 and 10 px across: majority vote keeps
    the small one (both readers), STAPLE the large one; R3 marks nothing."""
    a, b, _c = tasks.values()
    small = add_finding(a, ellipse(100, 100, [5, 6], radius=6))
    large = add_finding(b, ellipse(100, 100, [5, 6], radius=10))
    submit_all(tasks, {n: dict(LABELS) for n in tasks})
    return [small, large]


def expected(findings, grid_case, method: str) -> dict:
    grid = grid_for_series(grid_case.series)
    marks = [mark_for_finding(f, grid) for f in findings]
    return qc_consensus.consensus_geometry(marks, grid, method).as_geometry()


@pytest.mark.parametrize("method", ["staple", "majority"])
def test_a_case_settled_under_the_protocols_rule_gets_that_contour_as_its_reference(
    method, grid_case, tasks, protocol
):
    protocol.auto_accept_min_readers = 2
    protocol.consensus_method = method
    protocol.save()
    findings = two_readers_mark_one_nodule(grid_case, tasks)
    settlement = services.settle_case(grid_case.pk)
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    assert settlement.protocol["consensus_method"] == method
    (ref,) = ReferenceFinding.objects.filter(case=grid_case, is_current=True)
    assert ref.decision == ReferenceFinding.Decision.AUTO_CONSENSUS
    assert ref.geometry["consensus"]["method"] == method
    want = expected(findings, grid_case, method)
    assert ref.geometry["shapes"] == want["shapes"]
    other = expected(findings, grid_case, "majority" if method == "staple" else "staple")
    assert ref.geometry["shapes"] != other["shapes"]  # the two rules differ on this nodule
    if method == "staple":
        assert ref.geometry["consensus"]["voxels"] > other["consensus"]["voxels"]


def test_under_staple_the_arbitrator_sees_and_signs_the_staple_estimate(
    grid_case, tasks, protocol, arbitrator
):
    protocol.consensus_method = "staple"
    protocol.save()  # auto-accept needs 3 readers: the nodule of 2 goes to arbitration
    findings = two_readers_mark_one_nodule(grid_case, tasks)
    services.settle_case(grid_case.pk)
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ARBITRATION
    (cluster,) = Cluster.objects.filter(case=grid_case)
    staple = expected(findings, grid_case, "staple")
    assert cluster.consensus_geometry["shapes"] == staple["shapes"]  # the settled consensus
    task = ArbitrationTask.objects.get(case=grid_case)

    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=arbitrator.username, password=factories.PASSWORD)
    boot = bootstrap(client.get(f"/arbitrate/{task.pk}/"))
    assert boot["consensus_method"] == "staple"  # the page's default merge and its gold outline
    (shown,) = boot["task"]["clusters"]
    assert shown["merged_geometries"]["staple"]["shapes"] == staple["shapes"]
    assert shown["consensus_geometry"]["shapes"] == staple["shapes"]

    # "Accept merged" without a method signs the protocol's rule: STAPLE.
    sign(
        task,
        {
            "clusters": {
                str(cluster.pk): {"action": "accept_merged", "reason_code": "merged_delineation"}
            },
            "labels": {},
        },
    )
    ref = ReferenceFinding.objects.get(ref_key=cluster.ref_key, is_current=True)
    assert ref.geometry["consensus"]["method"] == "staple"
    assert ref.geometry["shapes"] == staple["shapes"]


def test_blind_arbitrators_merging_by_the_protocols_rule_agree_whether_or_not_they_name_it(
    grid_case, tasks, two_blind
):
    two_blind.consensus_method = "staple"
    two_blind.save()
    two_readers_mark_one_nodule(grid_case, tasks)
    services.settle_case(grid_case.pk)
    (cluster,) = Cluster.objects.filter(case=grid_case)
    pair = {t.role: t for t in ArbitrationTask.objects.filter(case=grid_case)}
    merge = {"action": "accept_merged", "reason_code": "merged_delineation"}
    sign(pair["first"], {"clusters": {str(cluster.pk): merge}, "labels": {}})
    sign(
        pair["second"],
        {"clusters": {str(cluster.pk): {**merge, "method": "staple"}}, "labels": {}},
    )
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED  # no tie-break
    ref = ReferenceFinding.objects.get(ref_key=cluster.ref_key, is_current=True)
    assert ref.geometry["consensus"]["method"] == "staple"
