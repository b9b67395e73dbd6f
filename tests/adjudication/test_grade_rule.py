"""Case-level grades (the fundus DR grade) in settling and arbitration: the
protocol's grade rule decides which disagreements go to arbitration, and the
arbitrator's signed decision becomes the reference grade."""

from __future__ import annotations

import pytest

from annotation_server.adjudication import services
from annotation_server.adjudication.models import ArbitrationTask, ReferenceLabels, Settlement
from annotation_server.projects.models import Case, ReadingProtocol
from tests import factories
from tests.adjudication.conftest import submit_all
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def fundus(project, case):
    project.label_schema = factories.schema("fundus-dr")
    project.save()
    return project.protocol


def grades(a, b, c, dmo="absent") -> dict:
    return {
        name: {"dr_grade": g, "dmo": dmo}
        for name, g in (("reader_a", a), ("reader_b", b), ("reader_c", c))
    }


def settle(case, tasks, labels) -> Settlement:
    submit_all(tasks, labels)
    return services.settle_case(case.pk)


def test_grades_differing_by_one_go_to_arbitration_when_n_is_one(case, tasks, fundus):
    assert (fundus.grade_rule, fundus.grade_difference) == ("difference", 1)
    settlement = settle(case, tasks, grades(1, 2, 2))
    assert settlement.outcome == Settlement.Outcome.ARBITRATION
    (dispute,) = settlement.label_disputes
    assert (dispute["key"], dispute["rule"]) == ("dr_grade", "difference")
    task = ArbitrationTask.objects.get(case=case)
    assert task.items == {"clusters": [], "labels": ["dr_grade"]}
    assert settlement.protocol["grade_rule"] == "difference"
    assert settlement.protocol["grade_difference"] == 1


def test_grades_differing_by_one_settle_when_n_is_two(case, tasks, fundus):
    fundus.grade_difference = 2
    fundus.save()
    settlement = settle(case, tasks, grades(1, 2, 2))
    case.refresh_from_db()
    assert settlement.outcome == Settlement.Outcome.ADJUDICATED
    assert case.state == Case.State.ADJUDICATED
    ref = ReferenceLabels.objects.get(case=case, is_current=True)
    assert ref.values == {"dr_grade": 2, "dmo": "absent"}
    assert ref.derived == {"referable_dr": True, "vertical_cdr": None}
    assert not ArbitrationTask.objects.filter(case=case).exists()


def test_grades_differing_by_two_still_go_to_arbitration_when_n_is_two(case, tasks, fundus):
    fundus.grade_difference = 2
    fundus.save()
    settlement = settle(case, tasks, grades(0, 2, 1))
    assert settlement.outcome == Settlement.Outcome.ARBITRATION


def test_referable_rule_arbitrates_across_the_threshold_only(case, tasks, fundus):
    fundus.grade_rule = ReadingProtocol.GradeRule.REFERABLE
    fundus.save()
    settlement = settle(case, tasks, grades(1, 2, 1))
    assert settlement.outcome == Settlement.Outcome.ARBITRATION
    assert settlement.label_disputes[0]["rule"] == "referable"


def test_referable_rule_settles_grades_on_one_side(case, tasks, fundus):
    fundus.grade_rule = ReadingProtocol.GradeRule.REFERABLE
    fundus.save()
    settlement = settle(case, tasks, grades(0, 1, 1))
    assert settlement.outcome == Settlement.Outcome.ADJUDICATED
    ref = ReferenceLabels.objects.get(case=case, is_current=True)
    assert ref.values["dr_grade"] == 1
    assert ref.derived["referable_dr"] is False


@pytest.mark.parametrize("rule", ["difference", "referable"])
def test_ungradable_against_a_grade_always_goes_to_arbitration(case, tasks, fundus, rule):
    fundus.grade_rule = rule
    fundus.grade_difference = 4
    fundus.save()
    settlement = settle(case, tasks, grades("ungradable", 2, 2))
    assert settlement.outcome == Settlement.Outcome.ARBITRATION
    assert settlement.label_disputes[0]["rule"] == "outside_scale"


def test_all_ungradable_settles_as_ungradable(case, tasks, fundus):
    settlement = settle(case, tasks, grades("ungradable", "ungradable", "ungradable", "ungradable"))
    assert settlement.outcome == Settlement.Outcome.ADJUDICATED
    ref = ReferenceLabels.objects.get(case=case, is_current=True)
    assert ref.values["dr_grade"] == "ungradable"
    assert ref.derived["referable_dr"] is None


@pytest.mark.parametrize("rule", ["difference", "referable"])
def test_macular_oedema_ungradable_against_an_answer_goes_to_arbitration_as_off_scale(
    case, tasks, fundus, rule
):
    fundus.grade_rule = rule
    fundus.save()
    labels = grades(2, 2, 2)
    labels["reader_b"]["dmo"] = "ungradable"
    settlement = settle(case, tasks, labels)
    assert settlement.outcome == Settlement.Outcome.ARBITRATION
    (dispute,) = settlement.label_disputes
    assert (dispute["key"], dispute["rule"]) == ("dmo", "outside_scale")
    assert sorted(dispute["values"].values()) == ["absent", "absent", "ungradable"]
    assert ArbitrationTask.objects.get(case=case).items == {"clusters": [], "labels": ["dmo"]}


def test_macular_oedema_absent_against_present_is_a_difference(case, tasks, fundus):
    labels = grades(1, 1, 1)
    labels["reader_c"]["dmo"] = "present"
    settlement = settle(case, tasks, labels)
    (dispute,) = settlement.label_disputes
    assert (dispute["key"], dispute["rule"]) == ("dmo", "difference")


def test_macular_oedema_ungradable_by_all_settles_off_scale(case, tasks, fundus):
    settlement = settle(case, tasks, grades(1, 1, 1, "ungradable"))
    assert settlement.outcome == Settlement.Outcome.ADJUDICATED
    ref = ReferenceLabels.objects.get(case=case, is_current=True)
    assert ref.values == {"dr_grade": 1, "dmo": "ungradable"}
    # grade 1 and oedema not gradable: referable DR cannot be derived
    assert ref.derived["referable_dr"] is None


def test_arbitrator_sees_every_grade_anonymised_and_signs_the_reference_grade(
    case, tasks, fundus, arbitrator, client_for
):
    settle(case, tasks, grades(1, 3, "ungradable"))
    api = client_for(arbitrator)
    (listed,) = api.get("/api/v1/arbitration-tasks/?mine=true").json()["results"]
    detail = api.get(f"/api/v1/arbitration-tasks/{listed['id']}/").json()
    (dispute,) = detail["label_disputes"]
    assert dispute["key"] == "dr_grade" and dispute["rule"] == "outside_scale"
    assert sorted(dispute["values"].values(), key=str) == [1, 3, "ungradable"]
    assert set(dispute["values"]) == {"R1", "R2", "R3"}
    for name in ("reader_a", "reader_b", "reader_c"):
        assert name not in str(detail)
    (field,) = detail["label_fields"]
    assert [o["value"] for o in field["outside_scale"]] == ["ungradable"]

    put = api.put(
        f"/api/v1/arbitration-tasks/{listed['id']}/decisions/",
        {
            "decisions": {
                "labels": {
                    "dr_grade": {
                        "value": 3,
                        "reason_code": "other",
                        "reason_text": "IRMA in two quadrants",
                    }
                }
            },
            "version": detail["version"],
        },
        format="json",
    )
    assert put.status_code == 200, put.json()
    signed = api.post(
        f"/api/v1/arbitration-tasks/{listed['id']}/sign/",
        {"password": PASSWORD, "version": put.json()["version"]},
    )
    assert signed.status_code == 200, signed.json()
    task = ArbitrationTask.objects.get(pk=listed["id"])
    assert task.state == ArbitrationTask.State.SIGNED
    assert task.signature_hash == services.decisions_hash(task, task.decisions)
    case.refresh_from_db()
    assert case.state == Case.State.ADJUDICATED
    ref = ReferenceLabels.objects.get(case=case, is_current=True)
    assert ref.values == {"dr_grade": 3, "dmo": "absent"}
    assert ref.decision == "arbitrated" and ref.decided_by == arbitrator
    assert ref.provenance["dr_grade"]["reason_text"] == "IRMA in two quadrants"
    assert ref.provenance["dr_grade"]["arbitrator_id"] == arbitrator.pk
    assert ref.derived["referable_dr"] is True


def test_a_grade_outside_the_scale_is_refused_as_a_decision(
    case, tasks, fundus, arbitrator, client_for
):
    settle(case, tasks, grades(1, 3, 3))
    api = client_for(arbitrator)
    (listed,) = api.get("/api/v1/arbitration-tasks/?mine=true").json()["results"]
    put = api.put(
        f"/api/v1/arbitration-tasks/{listed['id']}/decisions/",
        {"decisions": {"labels": {"dr_grade": {"value": 5}}}, "version": 1},
        format="json",
    )
    assert put.status_code == 400
    assert ArbitrationTask.objects.get(pk=listed["id"]).decisions == {}
