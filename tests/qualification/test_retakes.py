"""A qualification test that cannot be gamed.

The path seen in the demo: a reader failed, read the exact slice and centre of
each missed nodule on the result page, retook the same case and passed by
marking those positions. Reproduced first (`test_gaming_path_is_closed`), then
each part of the fix: retakes draw cases the reader has not read, feedback
counts misses by kind and never says where until the reader has passed or used
every attempt, kappa rows carry the schema's labels and say why a kappa is not
computable, the match rule shows its unit, the workstation labels a test case,
and a reader who must pass is told so on the home page and worklist."""

from __future__ import annotations

import json
import random

import pytest
from django.core.exceptions import ValidationError

from annotation_server.projects.models import Case, Membership
from annotation_server.qualification import services as q
from annotation_server.qualification.models import QualificationTest
from annotation_server.reading import services
from qc.scoring import (
    KAPPA_NO_PAIRS,
    KAPPA_NO_VARIATION,
    KAPPA_TOO_FEW_PAIRS,
    kappa_with_reason,
)
from tests import factories

pytestmark = pytest.mark.django_db

# distinctive coordinates: any of them in a reader's page or response is a leak
CENTRES = {
    "QA": (71.7, -31.3, -111.1),
    "QB": (-61.6, 41.4, -151.5),
    "QC": (13.9, 47.2, -71.9),
    "QD": (-23.1, 19.7, -93.3),
}


def _nodule(x, y, z):
    return {
        "finding_type": "nodule",
        "geometry": factories.nodule_geometry(x=x, y=y, z=z, slice_index=7),
        "attributes": factories.complete_nodule_attributes(),
    }


def _make_test(project, manager, codes, **settings):
    test = q.create_test(project, name="Exam", by=manager, min_sensitivity=0.8, **settings)
    for code in codes:
        case = factories.CaseFactory(project=project, code=code, state=Case.State.QC)
        q.add_case(test, case, by=manager)
        q.import_reference(case, [_nodule(*CENTRES[code])], by=manager)
    return test


def _read(task, reader, marks):
    for x, y, z in marks:
        services.save_finding(
            task,
            reader,
            finding_type="nodule",
            geometry=factories.nodule_geometry(x=x, y=y, z=z),
            attributes=factories.complete_nodule_attributes(),
        )
    services.save_case_label(
        task, reader, {"nodules_present": bool(marks), "image_quality": 3}, expected_version=None
    )
    services.submit(task, reader, expected_version=None)


def _take(attempt, reader, marks_by_code):
    for task in attempt.tasks.select_related("case").order_by("case__code"):
        _read(task, reader, marks_by_code.get(task.case.code, []))
    attempt.refresh_from_db()
    return attempt


def _codes(attempt) -> list[str]:
    return sorted(attempt.tasks.values_list("case__code", flat=True))


def _leaks(text: str, code: str) -> bool:
    x, y, z = CENTRES[code]
    return any(f"{v:.1f}" in text for v in (x, y, z))


def test_gaming_path_is_closed(project, manager, reader_a, client, session_client_for):
    """Fail, look for the positions, retake the same case: none of it works."""
    test = _make_test(project, manager, ["QA"], max_attempts=3)  # the demo's one-case test
    attempt = _take(q.start_attempt(test, reader_a), reader_a, {})
    assert attempt.passed is False and _codes(attempt) == ["QA"]
    client.force_login(reader_a)
    page = client.get(
        f"/projects/{project.slug}/qualification/attempts/{attempt.pk}/",
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    assert "1 finding missed" in page and 'data-kind="nodule"' in page
    assert not _leaks(page, "QA") and 'data-testid="misses"' not in page
    body = session_client_for(reader_a).get(f"/api/v1/qualification-attempts/{attempt.pk}/")
    assert body.status_code == 200 and not _leaks(json.dumps(body.json()), "QA")
    # the same case cannot be drawn again: the one-case test has nothing unseen left
    with pytest.raises(q.QualificationError, match="not read"):
        q.start_attempt(test, reader_a)
    response = client.post(
        f"/projects/{project.slug}/qualification/start/",
        {"open": "1"},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "you have not read" in response.content.decode()
    assert test.attempts.filter(reader=reader_a).count() == 1


def test_a_retake_draws_cases_the_reader_has_not_read(project, manager, reader_a):
    test = _make_test(project, manager, ["QA", "QB", "QC", "QD"], max_attempts=2)
    assert q.cases_per_attempt(test) == 2  # four cases shared over two attempts
    first = _take(q.start_attempt(test, reader_a), reader_a, {})
    second = q.start_attempt(test, reader_a)
    assert len(_codes(first)) == len(_codes(second)) == 2
    assert not set(_codes(first)) & set(_codes(second))


def test_manager_sets_cases_per_attempt_and_the_draw(project, manager, reader_a, reader_b):
    test = _make_test(project, manager, ["QA", "QB", "QC"], max_attempts=3)
    q.update_thresholds(test, by=manager, cases_per_attempt=2, draw="unseen_first")
    first = _take(q.start_attempt(test, reader_a), reader_a, {})
    second = q.start_attempt(test, reader_a)
    unseen = {"QA", "QB", "QC"} - set(_codes(first))
    assert len(_codes(second)) == 2 and unseen <= set(_codes(second))
    q.update_thresholds(test, by=manager, draw="same", cases_per_attempt=None)
    assert _codes(q.start_attempt(test, reader_b)) == ["QA", "QB", "QC"]
    with pytest.raises(ValidationError):
        q.update_thresholds(test, by=manager, draw="whatever")


def test_draw_includes_a_case_with_findings(project, manager, reader_a):
    test = _make_test(project, manager, ["QA"], cases_per_attempt=1)
    for code in ("N1", "N2", "N3"):  # normal cases: an empty reference
        case = factories.CaseFactory(project=project, code=code, state=Case.State.QC)
        q.add_case(test, case, by=manager)
        q.import_reference(case, [], by=manager)
    for seed in range(6):
        assert q.draw_cases(test, reader_a, rng=random.Random(seed))[0].code == "QA"


def test_positions_are_shown_once_every_attempt_is_used(project, manager, reader_a, client):
    test = _make_test(project, manager, ["QA", "QB"], max_attempts=2)
    first = _take(q.start_attempt(test, reader_a), reader_a, {})
    assert not q.reveals_positions(first, reader_a)
    assert q.reveals_positions(first, manager)  # the manager always sees where
    second = _take(q.start_attempt(test, reader_a), reader_a, {})
    assert q.reveals_positions(first, reader_a) and q.reveals_positions(second, reader_a)
    client.force_login(reader_a)
    page = client.get(
        f"/projects/{project.slug}/qualification/attempts/{second.pk}/",
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    assert 'data-testid="teaching"' in page and _leaks(page, _codes(second)[0])


def test_positions_are_shown_once_passed(project, manager, reader_a):
    test = _make_test(project, manager, ["QA", "QB"], max_attempts=2)
    attempt = q.start_attempt(test, reader_a)
    code = _codes(attempt)[0]
    x, y, z = CENTRES[code]
    attempt = _take(attempt, reader_a, {code: [(x + 1, y, z)]})
    assert attempt.passed and q.reveals_positions(attempt, reader_a)


def test_feedback_uses_schema_labels_reasons_and_units(project, manager, reader_a, client):
    test = _make_test(project, manager, ["QA", "QB"], max_attempts=2, min_kappa=0.5)
    attempt = q.start_attempt(test, reader_a)
    code = _codes(attempt)[0]
    x, y, z = CENTRES[code]
    attempt = _take(attempt, reader_a, {code: [(x + 1, y, z)]})  # one matched pair
    shown = q.feedback(attempt, reader_a)
    rows = {r["key"]: r for r in shown["kappa_rows"]}
    assert rows["nodule_type"]["label"] == "Nodule type" and rows["nodule_type"]["value"] is None
    assert "at least two" in rows["nodule_type"]["why"]
    assert shown["match"].endswith("mm") and "5" in shown["match"]
    client.force_login(reader_a)
    page = client.get(
        f"/projects/{project.slug}/qualification/attempts/{attempt.pk}/",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    ).content.decode()
    assert "结节类型" in page and "恶性程度" in page
    assert ">nodule_type<" not in page


def test_kappa_reasons():
    assert kappa_with_reason([], []) == (None, KAPPA_NO_PAIRS, 0)
    assert kappa_with_reason(["a"], ["a"])[1] == KAPPA_TOO_FEW_PAIRS
    assert kappa_with_reason(["a", "a"], ["a", "a"])[1] == KAPPA_NO_VARIATION
    value, why, n = kappa_with_reason(["a", "b", "a"], ["a", "b", "b"])
    assert why is None and n == 3 and value is not None


def test_manager_sees_reader_names_readers_see_pseudonyms(project, manager, reader_a, client):
    reader_a.first_name, reader_a.last_name = "Mei", "Wang"
    reader_a.save()
    test = _make_test(project, manager, ["QA", "QB"], max_attempts=2)
    attempt = _take(q.start_attempt(test, reader_a), reader_a, {})
    client.force_login(manager)
    page = client.get(
        f"/projects/{project.slug}/qualification/manage/", HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert "Mei Wang" in page and reader_a.profile.pseudonym in page
    result = client.get(
        f"/projects/{project.slug}/qualification/attempts/{attempt.pk}/",
        HTTP_ACCEPT_LANGUAGE="en",
    ).content.decode()
    assert "Mei Wang" in result


def test_manager_page_warns_when_the_set_is_too_small(project, manager, client):
    test = _make_test(project, manager, ["QA", "QB"], max_attempts=3, cases_per_attempt=1)
    client.force_login(manager)
    page = client.get(
        f"/projects/{project.slug}/qualification/manage/", HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert 'data-testid="too-few-cases"' in page
    q.update_thresholds(test, by=manager, max_attempts=2)
    page = client.get(
        f"/projects/{project.slug}/qualification/manage/", HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert 'data-testid="too-few-cases"' not in page


def test_the_test_case_opens_labelled_and_the_reader_is_told(project, manager, reader_a, client):
    test = _make_test(project, manager, ["QA", "QB"], max_attempts=2)
    client.force_login(reader_a)
    home = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-testid="must-qualify"' in home
    worklist = client.get("/worklist/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-testid="must-qualify"' in worklist and "must pass" in worklist
    attempt = q.start_attempt(test, reader_a)
    task = attempt.tasks.first()
    page = client.get(f"/read/{task.pk}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-testid="qualification-label"' in page and "Qualification test" in page
    Membership.objects.filter(project=project, user=reader_a).update(qualified=True)
    home = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-testid="must-qualify"' not in home


def test_threshold_api_takes_the_draw(project, manager, session_client_for):
    test = _make_test(project, manager, ["QA", "QB"])
    api = session_client_for(manager)
    response = api.patch(
        f"/api/v1/qualification-tests/{test.pk}/",
        {"cases_per_attempt": 1, "draw": "unseen_first"},
        format="json",
    )
    assert response.status_code == 200, response.content
    test.refresh_from_db()
    assert (test.cases_per_attempt, test.draw) == (1, QualificationTest.Draw.UNSEEN_FIRST)
    bad = api.patch(f"/api/v1/qualification-tests/{test.pk}/", {"draw": "x"}, format="json")
    assert bad.status_code == 400
