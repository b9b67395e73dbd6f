"""Arbitration through the API: drafts with optimistic locking, signing with the
password, blind pairs and the tie-breaker, re-arbitration as new revisions."""

from __future__ import annotations

import pytest

from annotation_server.adjudication import services
from annotation_server.adjudication.models import ArbitrationTask, Cluster, ReferenceFinding
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.models import Case
from annotation_server.reading.services import VersionConflict
from tests.adjudication.conftest import add_finding, ellipse, submit_all
from tests.factories import PASSWORD

LABELS = {"nodules_present": True, "image_quality": 3}


def disputed_case(grid_case, tasks, *, quality_c=3):
    """Two nodules: one marked by A and B only (existence dispute), one by all
    three with types solid/solid/part-solid (attribute dispute)."""
    a, b, c = tasks.values()
    add_finding(a, ellipse(100, 100, [5, 6]))
    add_finding(b, ellipse(102, 100, [5, 6]))
    add_finding(a, ellipse(300, 300, [20]), nodule_type="solid")
    add_finding(b, ellipse(301, 300, [20]), nodule_type="solid")
    add_finding(c, ellipse(300, 302, [20]), nodule_type="part_solid")
    labels = {n: dict(LABELS) for n in tasks}
    labels["reader_c"]["image_quality"] = quality_c
    submit_all(tasks, labels)
    services.settle_case(grid_case.pk)
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ARBITRATION
    return {c.readers: c for c in Cluster.objects.filter(case=grid_case)}


def decide(clusters, *, type_for_three="part_solid"):
    two, three = clusters[2], clusters[3]
    chosen = three.findings.get(attributes__nodule_type="part_solid")
    return {
        "clusters": {
            str(two.pk): {"action": "reject", "reason_code": "not_a_finding"},
            str(three.pk): {
                "action": "accept_reader",
                "finding": str(chosen.uid),
                "attributes": {"nodule_type": type_for_three},
                "reason_code": "best_delineation",
                "reason_text": "note-7731",
            },
        },
        "labels": {},
    }


@pytest.mark.django_db
def test_sole_arbitrator_decides_and_signs_through_the_api(
    grid_case, tasks, protocol, arbitrator, client_for
):
    clusters = disputed_case(grid_case, tasks)
    api = client_for(arbitrator)
    listed = api.get("/api/v1/arbitration-tasks/?mine=true").json()["results"]
    assert [t["case"] for t in listed] == [grid_case.pk]
    task_id = listed[0]["id"]
    detail = api.get(f"/api/v1/arbitration-tasks/{task_id}/").json()
    assert {c["id"] for c in detail["clusters"]} == {clusters[2].pk, clusters[3].pk}
    readers = {m["reader"] for c in detail["clusters"] for m in c["members"]}
    assert readers <= {"R1", "R2", "R3"} and len(readers) == 3
    body = str(detail)
    for name in ("reader_a", "reader_b", "reader_c", "RD0"):
        assert name not in body  # no identities, no pseudonyms
    assert {r["code"] for r in detail["reason_codes"]} >= {"not_a_finding", "below_size_limit"}
    reasons = {c["readers"]: [r["code"] for r in c["reasons"]] for c in detail["clusters"]}
    assert reasons == {2: ["existence"], 3: ["attribute"]}

    put = api.put(
        f"/api/v1/arbitration-tasks/{task_id}/decisions/",
        {"decisions": decide(clusters), "version": detail["version"]},
        format="json",
    )
    assert put.status_code == 200, put.json()
    version = put.json()["version"]

    wrong = api.post(
        f"/api/v1/arbitration-tasks/{task_id}/sign/", {"password": "nope", "version": version}
    )
    assert wrong.status_code == 403
    assert ArbitrationTask.objects.get(pk=task_id).state != ArbitrationTask.State.SIGNED
    assert AuditEvent.objects.filter(action="arbitration.signature_refused").count() == 1

    signed = api.post(
        f"/api/v1/arbitration-tasks/{task_id}/sign/", {"password": PASSWORD, "version": version}
    )
    assert signed.status_code == 200, signed.json()
    task = ArbitrationTask.objects.get(pk=task_id)
    assert task.state == ArbitrationTask.State.SIGNED
    event = AuditEvent.objects.get(action="arbitration.signed")
    assert event.data["sha256"] == task.signature_hash
    assert task.signature_hash == services.decisions_hash(task, task.decisions)
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED

    rejected = ReferenceFinding.objects.get(ref_key=clusters[2].ref_key)
    assert rejected.status == ReferenceFinding.Status.REJECTED
    accepted = ReferenceFinding.objects.get(ref_key=clusters[3].ref_key)
    assert accepted.status == ReferenceFinding.Status.INCLUDED
    assert accepted.decision == ReferenceFinding.Decision.ARBITRATED
    assert accepted.attributes["nodule_type"] == "part_solid"
    assert accepted.decided_by == arbitrator and accepted.arbitration_task_id == task_id
    assert accepted.reason_code == "best_delineation" and accepted.reason_text == "note-7731"
    assert accepted.supporting_findings.count() == 3
    assert accepted.match_rule == "centre_distance"
    # Image quality was agreed, so the reference labels are the readers' answers.
    refs = api.get(f"/api/v1/adjudication/{grid_case.pk}/").json()
    assert refs["reference_labels"][-1]["values"] == LABELS
    assert {r["status"] for r in refs["reference_findings"]} == {"included", "rejected"}


@pytest.mark.django_db
def test_signing_incomplete_decisions_is_refused(
    grid_case, tasks, protocol, arbitrator, client_for
):
    disputed_case(grid_case, tasks)
    api = client_for(arbitrator)
    task = ArbitrationTask.objects.get(case=grid_case)
    resp = api.post(
        f"/api/v1/arbitration-tasks/{task.pk}/sign/",
        {"password": PASSWORD, "version": task.version},
    )
    assert resp.status_code == 400
    assert "undecided" in str(resp.json())
    task.refresh_from_db()
    assert task.state == ArbitrationTask.State.ASSIGNED


@pytest.mark.django_db
def test_two_tabs_saving_one_task_the_stale_one_gets_409_and_nothing_is_lost(
    grid_case, tasks, protocol, arbitrator, client_for
):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    tab1, tab2 = client_for(arbitrator), client_for(arbitrator)
    url = f"/api/v1/arbitration-tasks/{task.pk}/decisions/"
    full = decide(clusters)
    only_two = {"clusters": {str(clusters[2].pk): full["clusters"][str(clusters[2].pk)]}}
    only_three = {"clusters": {str(clusters[3].pk): full["clusters"][str(clusters[3].pk)]}}
    first = tab1.put(url, {"decisions": only_two, "version": 1}, format="json")
    assert first.status_code == 200 and first.json()["version"] == 2
    stale = tab2.put(url, {"decisions": only_three, "version": 1}, format="json")
    assert stale.status_code == 409
    assert stale.json()["current_version"] == 2
    task.refresh_from_db()
    assert task.decisions["clusters"] == only_two["clusters"]  # the first save survives
    # The second tab reloads, merges and saves on top.
    merged = tab2.get(f"/api/v1/arbitration-tasks/{task.pk}/").json()
    decisions = merged["decisions"]
    decisions["clusters"].update(only_three["clusters"])
    again = tab2.put(url, {"decisions": decisions, "version": merged["version"]}, format="json")
    assert again.status_code == 200
    task.refresh_from_db()
    assert set(task.decisions["clusters"]) == {str(clusters[2].pk), str(clusters[3].pk)}


@pytest.mark.django_db
def test_invalid_decision_is_a_400_not_a_save(grid_case, tasks, protocol, arbitrator, client_for):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    bad = {"clusters": {str(clusters[3].pk): {"action": "accept_reader", "finding": "nope"}}}
    resp = client_for(arbitrator).put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {"decisions": bad, "version": 1},
        format="json",
    )
    assert resp.status_code == 400
    task.refresh_from_db()
    assert task.version == 1 and task.decisions == {}


def sign_via_api(api, task, decisions):
    detail = api.get(f"/api/v1/arbitration-tasks/{task.pk}/").json()
    put = api.put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {"decisions": decisions, "version": detail["version"]},
        format="json",
    )
    assert put.status_code == 200, put.json()
    resp = api.post(
        f"/api/v1/arbitration-tasks/{task.pk}/sign/",
        {"password": PASSWORD, "version": put.json()["version"]},
    )
    assert resp.status_code == 200, resp.json()
    return resp.json()


@pytest.mark.django_db
def test_two_blind_arbitrators_who_agree_need_no_tiebreak(grid_case, tasks, two_blind, client_for):
    clusters = disputed_case(grid_case, tasks)
    pair = {t.role: t for t in ArbitrationTask.objects.filter(case=grid_case)}
    for role in ("first", "second"):
        sign_via_api(client_for(pair[role].arbitrator), pair[role], decide(clusters))
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    assert not ArbitrationTask.objects.filter(role="tiebreak").exists()
    assert AuditEvent.objects.filter(action="arbitration.blind_agreed").exists()


@pytest.mark.django_db
def test_blind_arbitrators_cannot_see_each_other_and_a_third_breaks_the_tie(
    grid_case, tasks, two_blind, client_for, arbitrator, arbitrator_b, arbitrator_c
):
    clusters = disputed_case(grid_case, tasks, quality_c=2)
    pair = {t.role: t for t in ArbitrationTask.objects.filter(case=grid_case)}
    first, second = pair["first"], pair["second"]
    assert {first.arbitrator, second.arbitrator} == {arbitrator, arbitrator_b}
    first_api, second_api = client_for(first.arbitrator), client_for(second.arbitrator)
    labels = {"image_quality": {"value": 3, "reason_code": "label_confirmed"}}
    sign_via_api(first_api, first, {**decide(clusters), "labels": labels})

    # The second arbitrator sees nothing of the first's task or decisions.
    assert second_api.get(f"/api/v1/arbitration-tasks/{first.pk}/").status_code == 404
    listed = second_api.get(f"/api/v1/arbitration-tasks/?case={grid_case.pk}").json()["results"]
    assert [t["id"] for t in listed] == [second.pk]
    summary = second_api.get(f"/api/v1/adjudication/{grid_case.pk}/").json()
    assert [t["id"] for t in summary["arbitration_tasks"]] == [second.pk]
    assert summary["reference_findings"] == [] or all(
        r["decision"] == "auto_consensus" for r in summary["reference_findings"]
    )
    own = second_api.get(f"/api/v1/arbitration-tasks/{second.pk}/").json()
    assert own["blind_decisions"] is None and own["decisions"] == {}
    assert "note-7731" not in str(summary) + str(own)

    # The second disagrees on the three-reader cluster's type only.
    sign_via_api(
        second_api,
        second,
        {**decide(clusters, type_for_three="solid"), "labels": labels},
    )
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ARBITRATION
    tiebreak = ArbitrationTask.objects.get(case=grid_case, role="tiebreak")
    assert tiebreak.arbitrator == arbitrator_c
    assert tiebreak.items == {"clusters": [clusters[3].pk], "labels": []}
    third_api = client_for(arbitrator_c)
    detail = third_api.get(f"/api/v1/arbitration-tasks/{tiebreak.pk}/").json()
    blind = detail["blind_decisions"]
    key = str(clusters[3].pk)
    assert blind["A"]["clusters"][key]["attributes"] == {"nodule_type": "part_solid"}
    assert blind["B"]["clusters"][key]["attributes"] == {"nodule_type": "solid"}
    assert [c["id"] for c in detail["clusters"]] == [clusters[3].pk]

    third = {"clusters": {key: decide(clusters, type_for_three="solid")["clusters"][key]}}
    sign_via_api(third_api, tiebreak, third)
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    final = ReferenceFinding.objects.get(ref_key=clusters[3].ref_key, is_current=True)
    assert final.attributes["nodule_type"] == "solid"
    assert final.arbitration_task == tiebreak
    agreed = ReferenceFinding.objects.get(ref_key=clusters[2].ref_key, is_current=True)
    assert agreed.status == "rejected" and agreed.arbitration_task == first
    from annotation_server.adjudication.models import ReferenceLabels

    assert ReferenceLabels.objects.get(case=grid_case, is_current=True).values["image_quality"] == 3


@pytest.mark.django_db
def test_a_manager_holding_a_blind_task_cannot_see_the_other_blind_task(
    grid_case, tasks, two_blind, manager, project, arbitrator, arbitrator_b, client_for
):
    from annotation_server.accounts.models import Role
    from annotation_server.projects.services import grant_role, revoke_role

    revoke_role(project, arbitrator_b, Role.ARBITRATOR)
    grant_role(project, manager, Role.ARBITRATOR)
    disputed_case(grid_case, tasks)
    pair = {t.role: t for t in ArbitrationTask.objects.filter(case=grid_case)}
    assert manager in {pair["first"].arbitrator, pair["second"].arbitrator}
    other = next(t for t in pair.values() if t.arbitrator != manager)
    api = client_for(manager)
    assert api.get(f"/api/v1/arbitration-tasks/{other.pk}/").status_code == 404


@pytest.mark.django_db
def test_readers_and_outsiders_see_no_clusters_or_tasks(
    grid_case, tasks, protocol, reader_a, outsider, client_for
):
    disputed_case(grid_case, tasks)
    for user in (reader_a, outsider):
        api = client_for(user)
        assert api.get(f"/api/v1/clusters/?case={grid_case.pk}").json()["results"] == []
        assert api.get("/api/v1/arbitration-tasks/").json()["results"] == []
        assert api.get(f"/api/v1/reference-findings/?case={grid_case.pk}").json()["results"] == []


@pytest.mark.django_db
def test_re_arbitration_writes_new_revisions_and_keeps_the_old(
    grid_case, tasks, protocol, arbitrator, manager, client_for
):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    sign_via_api(client_for(arbitrator), task, decide(clusters))
    old = ReferenceFinding.objects.get(ref_key=clusters[3].ref_key)
    resp = client_for(manager).post(
        f"/api/v1/adjudication/{grid_case.pk}/reopen/",
        {"reason": "pathology came back", "clusters": [clusters[3].pk]},
        format="json",
    )
    assert resp.status_code == 201, resp.json()
    (round2,) = ArbitrationTask.objects.filter(case=grid_case, round=2)
    assert round2.items == {"clusters": [clusters[3].pk], "labels": []}
    exclude = {
        "clusters": {
            str(clusters[3].pk): {
                "action": "exclude",
                "reason_code": "below_size_limit",
                "reason_text": "< 3 mm on thin slices",
            }
        }
    }
    detail = client_for(arbitrator).get(f"/api/v1/arbitration-tasks/{round2.pk}/").json()
    assert detail["clusters"][0]["current_reference"]["revision"] == 1
    sign_via_api(client_for(arbitrator), round2, exclude)
    history = (
        client_for(manager)
        .get(f"/api/v1/reference-findings/?ref_key={clusters[3].ref_key}")
        .json()["results"]
    )
    assert [(r["revision"], r["is_current"], r["status"]) for r in history] == [
        (1, False, "included"),
        (2, True, "excluded"),
    ]
    assert history[1]["supersedes"] == old.pk
    old.refresh_from_db()
    assert old.attributes["nodule_type"] == "part_solid"  # untouched
    grid_case.refresh_from_db()
    assert grid_case.state == Case.State.ADJUDICATED
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "adjudication.reopened",
        "arbitration.assigned",
        "arbitration.signed",
        "adjudication.reference_written",
        "case.state_changed",
    } <= actions


@pytest.mark.django_db
def test_accept_merged_with_staple_records_the_method(
    grid_case, tasks, protocol, arbitrator, client_for
):
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    decisions = decide(clusters)
    decisions["clusters"][str(clusters[3].pk)] = {
        "action": "accept_merged",
        "method": "staple",
        "reason_code": "merged_delineation",
    }
    sign_via_api(client_for(arbitrator), task, decisions)
    ref = ReferenceFinding.objects.get(ref_key=clusters[3].ref_key)
    assert ref.geometry["consensus"]["method"] == "staple"
    assert ref.geometry["kind"] == "contour"
    assert ref.diameter_mm and 6 < ref.diameter_mm < 11


@pytest.mark.django_db
def test_only_managers_reopen(grid_case, tasks, protocol, arbitrator, client_for):
    clusters = disputed_case(grid_case, tasks)
    sign_via_api(
        client_for(arbitrator), ArbitrationTask.objects.get(case=grid_case), decide(clusters)
    )
    resp = client_for(arbitrator).post(
        f"/api/v1/adjudication/{grid_case.pk}/reopen/", {"reason": "x"}, format="json"
    )
    assert resp.status_code == 403
    assert not ArbitrationTask.objects.filter(round=2).exists()


def _ready_to_sign(grid_case, tasks, arbitrator, client_for):
    """A sole arbitrator's complete decisions saved: (api client, task, version)."""
    clusters = disputed_case(grid_case, tasks)
    task = ArbitrationTask.objects.get(case=grid_case)
    api = client_for(arbitrator)
    put = api.put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {"decisions": decide(clusters), "version": task.version},
        format="json",
    )
    assert put.status_code == 200, put.json()
    return api, task, put.json()["version"]


@pytest.mark.django_db
def test_signing_without_the_version_seen_is_a_400_naming_the_field(
    grid_case, tasks, protocol, arbitrator, client_for
):
    api, task, _ = _ready_to_sign(grid_case, tasks, arbitrator, client_for)
    resp = api.post(f"/api/v1/arbitration-tasks/{task.pk}/sign/", {"password": PASSWORD})
    assert resp.status_code == 400
    assert "version" in resp.json()
    task.refresh_from_db()
    assert task.state != ArbitrationTask.State.SIGNED
    # The service refuses it too, whoever calls it.
    with pytest.raises(VersionConflict):
        services.sign(task, arbitrator, PASSWORD, expected_version=None)
    task.refresh_from_db()
    assert task.state != ArbitrationTask.State.SIGNED
    assert not AuditEvent.objects.filter(action="arbitration.signed").exists()


@pytest.mark.django_db
def test_signing_a_stale_version_is_a_409_and_nothing_is_signed(
    grid_case, tasks, protocol, arbitrator, client_for
):
    api, task, version = _ready_to_sign(grid_case, tasks, arbitrator, client_for)
    resp = api.post(
        f"/api/v1/arbitration-tasks/{task.pk}/sign/",
        {"password": PASSWORD, "version": version - 1},
    )
    assert resp.status_code == 409
    assert resp.json()["code"] == "version_conflict"
    assert resp.json()["current_version"] == version
    task.refresh_from_db()
    assert task.state != ArbitrationTask.State.SIGNED and task.version == version
    assert not AuditEvent.objects.filter(action="arbitration.signed").exists()


@pytest.mark.django_db
def test_wrong_signature_passwords_lock_the_account_like_wrong_sign_ins(
    grid_case, tasks, protocol, arbitrator, client_for, settings
):
    from django.test import Client

    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    api, task, version = _ready_to_sign(grid_case, tasks, arbitrator, client_for)
    url = f"/api/v1/arbitration-tasks/{task.pk}/sign/"
    for _ in range(2):
        wrong = api.post(url, {"password": "nope", "version": version})
        assert wrong.status_code == 403
    locked = api.post(url, {"password": "nope", "version": version}, HTTP_ACCEPT_LANGUAGE="en")
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"
    assert locked.json()["detail"].startswith("Too many wrong passwords")
    right = api.post(url, {"password": PASSWORD, "version": version})
    assert right.status_code == 429 and "密码错误次数过多" in right.json()["detail"]
    task.refresh_from_db()
    assert task.state != ArbitrationTask.State.SIGNED
    reasons = list(
        AuditEvent.objects.filter(action="arbitration.signature_refused")
        .order_by("id")
        .values_list("data__reason", flat=True)
    )
    assert reasons == ["wrong password"] * 2 + ["account locked"] * 2
    # The same account cannot sign in on the form either.
    page = Client().post("/login/", {"username": arbitrator.username, "password": PASSWORD})
    assert page.status_code == 429
