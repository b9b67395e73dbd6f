"""Qualification: blind attempts scored against the reference on submission,
thresholds gating real assignments, attempts kept, the reference never shown to
a reader before their attempt is submitted; reference import and copy; pages."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.models import Case, Membership
from annotation_server.projects.schema import SchemaError
from annotation_server.qualification import services as q
from annotation_server.qualification.models import QualificationAttempt
from annotation_server.reading import assignment, phases, services
from annotation_server.reading.models import ReadingTask
from tests import factories

pytestmark = pytest.mark.django_db


# Distinctive coordinates: if they ever appear in a reader's response before
# submission, the reference leaked.
REF = {
    "Q1": [(77.7, -33.3, -111.1), (-66.6, 44.4, -155.5)],
    "Q2": [(12.3, 45.6, -78.9)],
    "Q3": [],  # a normal case
}


def _nodule(x, y, z, **attrs):
    return {
        "finding_type": "nodule",
        "geometry": factories.nodule_geometry(x=x, y=y, z=z, slice_index=7),
        "attributes": factories.complete_nodule_attributes(**attrs),
    }


@pytest.fixture
def qual(project, manager):
    """An active test of three cases with imported references; every attempt reads
    all three (the manager's "same cases" draw; tests/qualification/
    test_retakes.py covers the default draw of unseen cases)."""
    test = q.create_test(project, name="Lung set", by=manager, min_sensitivity=0.8, draw="same")
    test.max_fp_per_case = 0.5
    test.save()
    for code, centres in REF.items():
        case = factories.CaseFactory(project=project, code=code, state=Case.State.QC)
        q.add_case(test, case, by=manager)
        q.import_reference(case, [_nodule(*c) for c in centres], by=manager)
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
        task,
        reader,
        {"nodules_present": bool(marks), "image_quality": 3},
        expected_version=None,
    )
    return services.submit(task, reader, expected_version=None)


def _take(attempt, reader, marks_by_code):
    for task in attempt.tasks.select_related("case").order_by("case__code"):
        _read(task, reader, marks_by_code.get(task.case.code, []))
    attempt.refresh_from_db()
    return attempt


def _near(point, dx=1.0):
    return (point[0] + dx, point[1], point[2])


def test_attempt_creates_one_blind_read_per_case(qual, reader_a):
    attempt = q.start_attempt(qual, reader_a)
    assert attempt.number == 1
    tasks = list(attempt.tasks.select_related("case").order_by("case__code"))
    assert [t.case.code for t in tasks] == ["Q1", "Q2", "Q3"]
    assert all(t.reader == reader_a and t.phase == 1 for t in tasks)
    assert q.start_attempt(qual, reader_a) == attempt  # continue, not a second attempt
    assert AuditEvent.objects.filter(action="qualification.attempt_started").count() == 1


def test_failing_attempt_is_scored_with_its_misses_and_false_positives(qual, reader_a):
    attempt = q.start_attempt(qual, reader_a)
    attempt = _take(attempt, reader_a, {"Q1": [_near(REF["Q1"][0])], "Q3": [(0.0, 0.0, -50.0)]})
    assert attempt.submitted_at is not None
    assert attempt.sensitivity == pytest.approx(1 / 3)
    assert attempt.fp_per_case == pytest.approx(1 / 3)
    assert attempt.passed is False
    misses = attempt.details["misses"]
    assert sorted(m["case"] for m in misses) == ["Q1", "Q2"]
    q1_miss = next(m for m in misses if m["case"] == "Q1")
    assert q1_miss["centre_mm"] == pytest.approx(list(REF["Q1"][1]))
    assert q1_miss["slice_index"] == 7
    [fp] = attempt.details["false_positives"]
    assert fp["case"] == "Q3" and fp["centre_mm"] == pytest.approx([0.0, 0.0, -50.0])
    assert attempt.details["verdict"] == {"sensitivity": False, "fp_per_case": True, "kappa": None}
    assert not Membership.objects.get(project=qual.project, user=reader_a, role="reader").qualified
    assert AuditEvent.objects.filter(action="qualification.scored").exists()


def test_passing_attempt_qualifies_the_reader_and_attempts_are_kept(qual, reader_a):
    first = _take(q.start_attempt(qual, reader_a), reader_a, {})
    assert first.passed is False and first.sensitivity == 0
    every = {code: [_near(c, 2.0) for c in centres] for code, centres in REF.items()}
    second = _take(q.start_attempt(qual, reader_a), reader_a, every)
    assert second.number == 2
    assert second.sensitivity == 1.0 and second.fp_per_case == 0.0 and second.passed
    membership = Membership.objects.get(project=qual.project, user=reader_a, role="reader")
    assert membership.qualified
    assert list(
        QualificationAttempt.objects.filter(reader=reader_a).values_list("number", "passed")
    ) == [(1, False), (2, True)]
    assert AuditEvent.objects.filter(action="qualification.reader_qualified").count() == 1
    with pytest.raises(q.QualificationError):
        q.start_attempt(qual, reader_a)  # already qualified


def test_kappa_gate(qual, manager, reader_a, reader_b):
    qual.min_kappa = 0.5
    qual.save()
    kinds = {
        "Q1": [("solid", 3), ("part_solid", 4)],
        "Q2": [("ground_glass", 2)],
    }
    for code, attrs in kinds.items():
        case = Case.objects.get(project=qual.project, code=code)
        q.import_reference(
            case,
            [
                _nodule(*c, nodule_type=t, malignancy=m)
                for c, (t, m) in zip(REF[code], attrs, strict=True)
            ],
            by=manager,
        )

    def take(reader, shuffle):
        attempt = q.start_attempt(qual, reader)
        for task in attempt.tasks.select_related("case").order_by("case__code"):
            code = task.case.code
            answers = kinds.get(code, [])
            if shuffle:  # every nodule found, every type called differently
                answers = [("calcified", 5 - m) for _t, m in answers]
            for centre, (t, m) in zip(REF[code], answers, strict=True):
                services.save_finding(
                    task,
                    reader,
                    finding_type="nodule",
                    geometry=factories.nodule_geometry(*_near(centre)),
                    attributes=factories.complete_nodule_attributes(nodule_type=t, malignancy=m),
                )
            services.save_case_label(
                task, reader, {"nodules_present": bool(answers), "image_quality": 3},
                expected_version=None,
            )  # fmt: skip
            services.submit(task, reader, expected_version=None)
        attempt.refresh_from_db()
        return attempt

    good = take(reader_a, shuffle=False)
    assert good.sensitivity == 1.0 and good.kappa == pytest.approx(1.0) and good.passed
    assert good.details["verdict"]["kappa"] is True
    assert set(good.details["score"]["kappa"]) >= {"nodule_type", "malignancy"}
    bad = take(reader_b, shuffle=True)
    assert bad.sensitivity == 1.0 and bad.fp_per_case == 0.0
    assert bad.kappa < 0.5 and bad.details["verdict"]["kappa"] is False
    assert bad.passed is False


def test_max_attempts_is_respected(qual, reader_a):
    qual.max_attempts = 2
    qual.save()
    for _ in range(2):
        _take(q.start_attempt(qual, reader_a), reader_a, {})
    with pytest.raises(q.QualificationError, match="attempts"):
        q.start_attempt(qual, reader_a)
    assert QualificationAttempt.objects.filter(reader=reader_a).count() == 2


def test_only_readers_take_the_test(qual, outsider, arbitrator):
    from django.core.exceptions import PermissionDenied

    for person in (outsider, arbitrator):
        with pytest.raises(PermissionDenied):
            q.start_attempt(qual, person)


def test_no_attempt_without_a_reference(project, manager, reader_a):
    test = q.create_test(project, name="empty", by=manager)
    case = factories.CaseFactory(project=project, code="QX", state=Case.State.QC)
    q.add_case(test, case, by=manager)
    with pytest.raises(q.QualificationError, match="reference"):
        q.start_attempt(test, reader_a)


def test_passing_gates_real_assignments(qual, reader_a, reader_b, reader_c, project):
    project.protocol.readers_per_case = 1
    project.protocol.save()
    case = factories.CaseFactory(project=project, code="R1", state=Case.State.QC)
    assert assignment.assign_project(project).filled_cases == []
    every = {code: [_near(c) for c in centres] for code, centres in REF.items()}
    _take(q.start_attempt(qual, reader_b), reader_b, every)
    assignment.assign_project(project)
    assert list(ReadingTask.objects.filter(case=case).values_list("reader_id", flat=True)) == [
        reader_b.pk
    ]


def test_qualification_reads_never_enter_phases_or_matching(qual, reader_a, project, monkeypatch):
    project.protocol.review_phase = True
    project.protocol.readers_per_case = 1
    project.protocol.save()
    called = []
    monkeypatch.setattr(phases, "_reads_complete", lambda *a, **k: called.append(a))
    _take(q.start_attempt(qual, reader_a), reader_a, {})
    assert not ReadingTask.objects.filter(phase=2).exists()
    assert called == []


# ------------------------------------------------------------ the reference


def test_import_reference_replaces_the_previous_one(qual, manager):
    case = Case.objects.get(project=qual.project, code="Q2")
    old = set(ReferenceFinding.objects.filter(case=case).values_list("pk", flat=True))
    assert q.import_reference(case, [_nodule(1, 2, 3), _nodule(4, 5, 6)], by=manager) == 2
    current = ReferenceFinding.objects.filter(case=case, is_current=True)
    assert current.count() == 2 and not set(current.values_list("pk", flat=True)) & old
    assert ReferenceFinding.objects.filter(pk__in=old, is_current=False).count() == 1
    assert all(r.decision == "imported" and r.decided_by == manager for r in current)


def test_import_reference_is_all_or_nothing_and_only_for_qualification_cases(qual, manager, case):
    target = Case.objects.get(project=qual.project, code="Q2")
    bad = [_nodule(1, 2, 3), {"finding_type": "nodule", "geometry": {"kind": "blob"}}]
    with pytest.raises(SchemaError):
        q.import_reference(target, bad, by=manager)
    assert ReferenceFinding.objects.filter(case=target, is_current=True).count() == 1
    with pytest.raises(q.QualificationError):
        q.import_reference(case, [_nodule(1, 2, 3)], by=manager)  # a real case


def test_import_reference_command(qual, manager, tmp_path):
    path = tmp_path / "reference.json"
    path.write_text(json.dumps({"cases": {"Q3": [_nodule(9, 9, 9)], "Q1": []}}), encoding="utf-8")
    out = []
    call_command(
        "import_qualification_reference",
        qual.project.slug,
        str(path),
        "--user",
        "manager",
        stdout=type("W", (), {"write": lambda self, s: out.append(s)})(),
    )
    assert "1 reference findings imported on 2 cases" in "".join(out)
    counts = q.reference_counts(qual.cases.all())
    codes = dict(qual.cases.values_list("pk", "code"))
    assert {codes[k]: v for k, v in counts.items()} == {"Q2": 1, "Q3": 1}
    event = AuditEvent.objects.filter(action="qualification.reference_imported").last()
    assert event.actor_id == manager.pk and event.data["source"] == "reference.json"
    path.write_text(json.dumps({"cases": {"NOPE": []}}), encoding="utf-8")
    with pytest.raises(CommandError, match="NOPE"):
        call_command("import_qualification_reference", qual.project.slug, str(path))


def test_copy_reference_from_an_adjudicated_case(qual, manager, project):
    series_kwargs = {"rows": 512, "columns": 512, "pixel_spacing_mm": [0.7, 0.7]}
    source = factories.CaseFactory(project=project, code="ADJ", state=Case.State.ADJUDICATED)
    target = Case.objects.get(project=project, code="Q3")
    for c in (source, target):
        type(c.series).objects.filter(pk=c.series_id).update(**series_kwargs)
    from django.utils import timezone

    kept = ReferenceFinding.objects.create(
        case=source,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=5, y=6, z=7),
        centre_x_mm=5,
        centre_y_mm=6,
        centre_z_mm=7,
        attributes=factories.complete_nodule_attributes(),
        decision="arbitrated",
        decided_at=timezone.now(),
    )
    ReferenceFinding.objects.create(
        case=source,
        finding_type="nodule",
        status="excluded",
        decision="arbitrated",
        decided_at=timezone.now(),
    )
    assert q.copy_reference(source, target, by=manager) == 1
    [copied] = ReferenceFinding.objects.filter(case=target, is_current=True)
    assert (copied.centre_x_mm, copied.geometry) == (5, kept.geometry)
    assert str(kept.ref_key) in copied.reason_text
    other = factories.CaseFactory(project=project, code="ADJ2", state=Case.State.ADJUDICATED)
    with pytest.raises(q.QualificationError, match="same images"):
        q.copy_reference(other, target, by=manager)
    reading = factories.CaseFactory(project=project, code="RD", state=Case.State.READING)
    with pytest.raises(q.QualificationError, match="not adjudicated"):
        q.copy_reference(reading, target, by=manager)


def test_only_managers_set_references_and_thresholds(qual, reader_a):
    from django.core.exceptions import PermissionDenied

    case = Case.objects.get(project=qual.project, code="Q1")
    with pytest.raises(PermissionDenied):
        q.import_reference(case, [], by=reader_a)
    with pytest.raises(PermissionDenied):
        q.update_thresholds(qual, by=reader_a, min_sensitivity=0.1)


# ----------------------------------------------------- no leak, through the API


def _everything(client, project) -> str:
    from annotation_server.api_urls import router

    bodies = []
    for prefix, _viewset, _basename in router.registry:
        if prefix in ("jobs",):
            continue
        response = client.get(f"/api/v1/{prefix}/")
        if response.status_code == 200:
            bodies.append(json.dumps(response.json()))
    for url in (
        f"/api/v1/projects/{project.slug}/",
        "/api/v1/qualification-tests/",
        "/api/v1/qualification-attempts/",
    ):
        bodies.append(json.dumps(client.get(url).json()))
    for attempt in QualificationAttempt.objects.all():
        bodies.append(
            json.dumps(client.get(f"/api/v1/qualification-attempts/{attempt.pk}/").json())
        )
        for task in attempt.tasks.all():
            for url in (
                f"/api/v1/reading-tasks/{task.pk}/",
                f"/api/v1/cases/{task.case_id}/",
                f"/api/v1/findings/?task={task.pk}",
                f"/api/v1/reference-findings/?case={task.case_id}",
                f"/api/v1/adjudication/{task.case_id}/",
            ):
                response = client.get(url)
                bodies.append(f"{url} {response.status_code} {response.content.decode()}")
    return "\n".join(bodies)


def test_the_crawl_would_see_a_reference_that_is_visible(qual, manager, client_for):
    """The crawl below is able to catch a leak: a manager may see the reference."""
    text = _everything(client_for(manager), qual.project)
    keys = ReferenceFinding.objects.values_list("ref_key", flat=True)
    assert any(str(key) in text for key in keys)


def test_reference_never_reaches_the_reader_before_submission(qual, reader_a, client_for):
    api = client_for(reader_a)
    test_body = api.get("/api/v1/qualification-tests/").json()["results"][0]
    assert "cases" not in test_body and test_body["me"]["can_start"]
    started = api.post(f"/api/v1/qualification-tests/{qual.pk}/start/")
    assert started.status_code == 201
    attempt = started.json()
    assert [t["url"] for t in attempt["tasks"]] == [f"/read/{t['id']}/" for t in attempt["tasks"]]
    assert attempt["sensitivity"] is None and attempt["details"] is None
    # read two of the three cases: still nothing of the reference anywhere
    att = QualificationAttempt.objects.get(pk=attempt["id"])
    tasks = list(att.tasks.select_related("case").order_by("case__code"))
    _read(tasks[0], reader_a, [])
    _read(tasks[1], reader_a, [])
    text = _everything(api, qual.project)
    ref_keys = [str(k) for k in ReferenceFinding.objects.values_list("ref_key", flat=True)]
    for key in ref_keys:
        assert key not in text
    for centres in REF.values():
        for centre in centres:
            # as a number of its own, not inside a timestamp, a UID or a longer number
            assert not [v for v in centre if _number_in(v, text)]
    assert api.get(f"/api/v1/qualification-tests/{qual.pk}/readers/").status_code == 403
    # after the last read, the reader learns how many they missed, not where
    _read(tasks[2], reader_a, [])
    done = api.get(f"/api/v1/qualification-attempts/{att.pk}/").json()
    assert done["passed"] is False and done["sensitivity"] == 0.0
    assert done["details"]["missed_by_type"] == {"nodule": 3}
    assert "misses" not in done["details"] and "77.7" not in json.dumps(done)


def test_readers_do_not_see_each_others_attempts(qual, reader_a, reader_b, client_for):
    theirs = _take(q.start_attempt(qual, reader_b), reader_b, {})
    api = client_for(reader_a)
    assert api.get(f"/api/v1/qualification-attempts/{theirs.pk}/").status_code == 404
    assert api.get("/api/v1/qualification-attempts/").json()["count"] == 0
    assert api.get(f"/api/v1/reading-tasks/{theirs.tasks.first().pk}/").status_code == 404


def test_manager_api_thresholds_readers_and_reference(qual, manager, reader_a, client_for):
    api = client_for(manager)
    patched = api.patch(
        f"/api/v1/qualification-tests/{qual.pk}/",
        {"min_sensitivity": 0.9, "min_kappa": 0.4, "max_attempts": 5},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    qual.refresh_from_db()
    assert (qual.min_sensitivity, qual.min_kappa, qual.max_attempts) == (0.9, 0.4, 5)
    assert AuditEvent.objects.filter(action="qualification.thresholds_changed").exists()
    assert (
        api.patch(
            f"/api/v1/qualification-tests/{qual.pk}/", {"min_sensitivity": 3}, format="json"
        ).status_code
        == 400
    )
    assert (
        client_for(reader_a)
        .patch(f"/api/v1/qualification-tests/{qual.pk}/", {"min_sensitivity": 0.1}, format="json")
        .status_code
        == 403
    )
    _take(q.start_attempt(qual, reader_a), reader_a, {})
    rows = api.get(f"/api/v1/qualification-tests/{qual.pk}/readers/").json()
    mine = next(r for r in rows if r["user_id"] == reader_a.pk)
    assert mine["status"] == "not_passed" and mine["attempts"][0]["passed"] is False
    body = api.get(f"/api/v1/qualification-tests/{qual.pk}/").json()
    assert {c["code"]: c["reference_findings"] for c in body["cases"]} == {
        "Q1": 2,
        "Q2": 1,
        "Q3": 0,
    }
    ref = api.post(
        f"/api/v1/qualification-tests/{qual.pk}/reference/",
        {"cases": {"Q3": [_nodule(1, 1, 1)]}},
        format="json",
    )
    assert ref.status_code == 201 and ref.json() == {"findings": 1}


# ------------------------------------------------------------------- pages


def test_reader_pages_start_continue_and_result(qual, reader_a, client):
    client.force_login(reader_a)
    url = f"/projects/{qual.project.slug}/qualification/"
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Start the qualification test" in page and "0.80" in page
    response = client.post(f"{url}start/", {"open": "1"})
    attempt = QualificationAttempt.objects.get(reader=reader_a)
    first = attempt.tasks.order_by("case__code").first()
    assert response.status_code == 302 and response["Location"] == f"/read/{first.pk}/"
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'href="/read/{first.pk}/"' in page and "Attempt 1 in progress" in page
    result_url = f"{url}attempts/{attempt.pk}/"
    assert "still in progress" in client.get(result_url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    _take(attempt, reader_a, {"Q1": [_near(REF["Q1"][0])]})
    result = client.get(result_url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Not passed." in result and "0.33" in result
    assert "2 findings missed" in result and 'data-kind="nodule"' in result
    assert '<tr data-case="Q' not in result and "-66.6" not in result  # never where


def test_result_page_is_private_to_reader_and_managers(qual, reader_a, reader_b, manager, client):
    attempt = _take(q.start_attempt(qual, reader_a), reader_a, {})
    url = f"/projects/{qual.project.slug}/qualification/attempts/{attempt.pk}/"
    client.force_login(reader_b)
    assert client.get(url).status_code == 404
    client.force_login(manager)
    assert client.get(url).status_code == 200


def test_manager_page_settings_and_reader_status(qual, manager, reader_a, client):
    _take(q.start_attempt(qual, reader_a), reader_a, {})
    client.force_login(manager)
    base = f"/projects/{qual.project.slug}/qualification/manage/"
    page = client.get(base, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert reader_a.profile.pseudonym in page and "not passed yet" in page
    response = client.post(
        f"{base}settings/",
        {
            "name": "Lung set v2",
            "min_sensitivity": "0.7",
            "max_fp_per_case": "2",
            "min_kappa": "",
            "max_attempts": "4",
            "active": "on",
        },
    )
    assert response.status_code == 302
    qual.refresh_from_db()
    assert (qual.name, qual.min_sensitivity, qual.max_attempts) == ("Lung set v2", 0.7, 4)
    client.force_login(reader_a)
    assert client.get(base).status_code == 403


def test_manager_page_adds_cases_and_uploads_a_reference(project, manager, client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client.force_login(manager)
    base = f"/projects/{project.slug}/qualification/manage/"
    client.post(
        f"{base}settings/",
        {"name": "Set", "min_sensitivity": "0.8", "max_fp_per_case": "1", "max_attempts": "3",
         "active": "on"},
    )  # fmt: skip
    test = project.qualification_tests.get()
    case = factories.CaseFactory(project=project, code="NEWQ", state=Case.State.QC)
    client.post(f"{base}cases/", {"test": test.pk, "case": case.pk, "action": "add"})
    case.refresh_from_db()
    assert case.is_qualification and test.cases.filter(pk=case.pk).exists()
    upload = SimpleUploadedFile(
        "ref.json", json.dumps({"cases": {"NEWQ": [_nodule(3, 3, 3)]}}).encode()
    )
    client.post(f"{base}reference/", {"reference": upload})
    assert ReferenceFinding.objects.filter(case=case, is_current=True).count() == 1
    page = client.get(base, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-case="NEWQ"' in page and 'data-col="reference">1<' in page


def test_home_links_and_who_gets_which_qualification_page(
    project, reader_a, manager, arbitrator, client
):
    client.force_login(reader_a)
    home = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'href="/projects/{project.slug}/qualification/"' in home
    assert "assignments-link" not in home
    page = client.get(f"/projects/{project.slug}/qualification/", HTTP_ACCEPT_LANGUAGE="en")
    assert "no active qualification test" in page.content.decode()
    client.force_login(manager)
    home = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'href="/projects/{project.slug}/assignments/"' in home
    assert f'href="/projects/{project.slug}/qualification/manage/"' in home
    response = client.get(f"/projects/{project.slug}/qualification/")
    assert response.status_code == 302 and response["Location"].endswith("/qualification/manage/")
    client.force_login(arbitrator)
    page = client.get(f"/projects/{project.slug}/qualification/", HTTP_ACCEPT_LANGUAGE="en")
    assert 'data-testid="not-reader"' in page.content.decode()
    assert client.get(f"/projects/{project.slug}/qualification/manage/").status_code == 403


def test_manager_page_copies_an_adjudicated_reference(qual, project, manager, client):
    from django.utils import timezone

    source = factories.CaseFactory(project=project, code="ADJ", state=Case.State.ADJUDICATED)
    ReferenceFinding.objects.create(
        case=source,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=8, y=8, z=8),
        centre_x_mm=8,
        centre_y_mm=8,
        centre_z_mm=8,
        decision="auto_consensus",
        decided_at=timezone.now(),
    )
    target = Case.objects.get(project=project, code="Q3")
    client.force_login(manager)
    base = f"/projects/{project.slug}/qualification/manage/"
    page = client.get(base, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-testid="copy-form"' in page and f'value="{source.pk}"' in page
    client.post(f"{base}copy-reference/", {"source": source.pk, "target": target.pk})
    assert ReferenceFinding.objects.filter(case=target, is_current=True).count() == 1
    type(source.series).objects.filter(pk=source.series_id).update(rows=999)
    response = client.post(
        f"{base}copy-reference/",
        {"source": source.pk, "target": target.pk},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert "same images" in response.content.decode()


def _number_in(value: float, text: str) -> bool:
    import re

    return re.search(rf"(?<![\d.]){re.escape(str(value))}(?![\d.])", text) is not None
