"""An arbitrator adds a finding no reader marked, with a reason (issue 12): it
is written to the reference standard on signing (arbitrated, no supporting
reads, the reason kept); without a reason nothing is signed; with two blind
arbitrators an addition never passes on one signature: the tie-breaker decides."""

from __future__ import annotations

import uuid

import pytest

from annotation_server.adjudication.models import ArbitrationTask, ReferenceFinding
from annotation_server.projects.models import Case
from tests import factories
from tests.adjudication.conftest import ellipse
from tests.adjudication.test_arbitration import decide, disputed_case, sign_via_api
from tests.adjudication.test_console_stuck import sign

pytestmark = pytest.mark.django_db


def added(reason_code="missed_by_readers", **extra) -> dict:
    return {
        "key": str(uuid.uuid4()),
        "finding_type": "nodule",
        "geometry": ellipse(400, 200, [30, 31]),
        "attributes": factories.complete_nodule_attributes(nodule_type="ground_glass"),
        "reason_code": reason_code,
        "reason_text": "GGO in the right upper lobe, missed by all",
        **extra,
    }


def test_the_sole_arbitrator_adds_a_finding_no_reader_marked(
    grid_case, tasks, protocol, arbitrator, session_client_for
):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    api = session_client_for(arbitrator)
    extra = added(reason_code="")
    refused = api.put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {"decisions": {**decide(clusters), "added": [{**extra, "key": "nope"}]}, "version": 1},
        format="json",
    )
    assert refused.status_code == 400 and "UUID" in str(refused.json())
    saved = api.put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {"decisions": {**decide(clusters), "added": [extra]}, "version": 1},
        format="json",
    )
    assert saved.status_code == 200, saved.json()  # a draft may lack the reason
    from tests.factories import PASSWORD

    no_reason = api.post(
        f"/api/v1/arbitration-tasks/{task.pk}/sign/",
        {"password": PASSWORD, "version": saved.json()["version"]},
    )
    assert no_reason.status_code == 400 and "reason_code" in str(no_reason.json())
    sign_via_api(api, task, {**decide(clusters), "added": [added()]})
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    (ref,) = ReferenceFinding.objects.filter(geometry__added_by_arbitrator=True)
    assert ref.decision == ReferenceFinding.Decision.ARBITRATED
    assert ref.status == ReferenceFinding.Status.INCLUDED
    assert ref.supporting_findings.count() == 0
    assert ref.reason_code == "missed_by_readers" and "missed by all" in ref.reason_text
    assert ref.attributes["nodule_type"] == "ground_glass"
    assert ref.decided_by == arbitrator and ref.match_rule == "centre_distance"
    assert ref.diameter_mm and ref.diameter_mm > 0


def test_an_addition_by_a_blind_arbitrator_goes_to_the_tiebreaker(
    grid_case, tasks, two_blind, arbitrator_c, session_client_for
):
    clusters = disputed_case(grid_case, tasks)
    pair = {t.role: t for t in ArbitrationTask.objects.filter(case=grid_case)}
    proposal = added()
    sign(pair["first"], {**decide(clusters), "added": [proposal]})
    sign(pair["second"], decide(clusters))  # agrees on every cluster
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ARBITRATION
    tiebreak = ArbitrationTask.objects.get(case=grid_case, role="tiebreak")
    assert tiebreak.items == {"clusters": [], "labels": [], "added": True}
    assert not ReferenceFinding.objects.filter(geometry__added_by_arbitrator=True).exists()
    api = session_client_for(tiebreak.arbitrator)
    blind = api.get(f"/api/v1/arbitration-tasks/{tiebreak.pk}/").json()["blind_decisions"]
    assert [a["key"] for a in blind["A"]["added"]] == [proposal["key"]]
    assert blind["B"]["added"] == []
    sign(tiebreak, {"clusters": {}, "labels": {}, "added": [proposal]})
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    ref = ReferenceFinding.objects.get(geometry__added_by_arbitrator=True)
    assert str(ref.ref_key) == proposal["key"] and ref.arbitration_task == tiebreak


def test_a_draft_may_hold_an_added_finding_not_drawn_yet_but_signing_needs_its_shape(
    grid_case, tasks, protocol, arbitrator, session_client_for
):
    """The page saves a finding as soon as the arbitrator starts it, before drawing."""
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    api = session_client_for(arbitrator)
    started = {k: v for k, v in added().items() if k != "geometry"}
    saved = api.put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {"decisions": {**decide(clusters), "added": [started]}, "version": 1},
        format="json",
    )
    assert saved.status_code == 200, saved.json()
    from tests.factories import PASSWORD

    refused = api.post(
        f"/api/v1/arbitration-tasks/{task.pk}/sign/",
        {"password": PASSWORD, "version": saved.json()["version"]},
    )
    assert refused.status_code == 400 and "geometry" in str(refused.json())
    task.refresh_from_db()
    assert task.state != ArbitrationTask.State.SIGNED
    drawn_badly = api.put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {
            "decisions": {**decide(clusters), "added": [{**started, "geometry": {"kind": "x"}}]},
            "version": saved.json()["version"],
        },
        format="json",
    )
    assert drawn_badly.status_code == 400  # a shape given is still checked in a draft
