"""`manage.py demo` seeds every role, the three projects and cases in every state."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from annotation_server.imaging.models import Instance
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Project
from annotation_server.reading.models import AssistModelVersion, Proposal, ReadingTask
from tests import factories


def _wait_for_jobs(worker, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while Job.objects.exclude(state__in=(Job.State.SUCCEEDED, Job.State.FAILED)).exists():
        assert time.monotonic() < deadline, "jobs still queued"
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)
    assert not Job.objects.filter(state=Job.State.FAILED).exists(), list(
        Job.objects.filter(state=Job.State.FAILED).values_list("kind", "error")
    )


@pytest.fixture
def media(settings, tmp_path):
    """Set before the worker starts, so the worker stores and reads the same files."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keeps the shipped schemas
def test_demo_seeds_people_projects_and_states_idempotently(media, capsys, celery_worker):
    args = [
        "--ct-cases",
        "5",
        "--ct-slices",
        "8",
        "--xr-cases",
        "5",
        "--xr-size",
        "256",
        "--fundus-size",
        "256",
        "--password",
        "demo-pass-123",
    ]
    for key in ("lung-nodule-ct", "chest-radiograph", "fundus-dr"):
        factories.schema(key)  # shipped by migrations; an earlier flush may have emptied them
    call_command("demo", *args)  # its jobs (QC, settling) go to a real worker
    out = capsys.readouterr().out
    _wait_for_jobs(celery_worker)
    people = ("admin", "manager", "reader1", "reader2", "reader3", "reader4", "arbitrator")
    for username in (*people, "arbitrator2", "arbitrator3"):
        assert username in out
        assert authenticate(username=username, password="demo-pass-123") is not None
    # The lung project's adjudicated cases are frozen into version 1.0.0.
    for slug, settled in (("demo-lung-ct", "frozen"), ("demo-chest-xr", "adjudicated")):
        project = Project.objects.get(slug=slug)
        states = set(project.cases.values_list("state", flat=True))
        assert states == {"imported", "qc", "reading", "arbitration", settled}, slug
    reader_tasks = ReadingTask.objects.filter(reader__username="reader1")
    assert reader_tasks.filter(state="in_progress").exists()
    # The periodic jobs ran: reader1's overdue read is on their home page; the
    # nightly audit check found the chain intact (no notice for the manager).
    from annotation_server.web import periodic

    people = {u.username: u for u in get_user_model().objects.all()}
    (overdue,) = periodic.notices_for(people["reader1"])
    assert overdue["kind"] == "overdue" and overdue["reads"] == 1
    assert periodic.notices_for(people["manager"]) == []
    assert "overdue read(s) reminded; audit chain intact" in out
    assert reader_tasks.filter(state="submitted").exists()
    # The settle job matched the reads: the case everyone agreed on is adjudicated
    # by auto-consensus; the one with a missed nodule waits for two blind arbitrators.
    lung = Project.objects.get(slug="demo-lung-ct")
    adjudicated = lung.cases.get(state="frozen")
    refs = adjudicated.reference_findings.filter(is_current=True)
    assert refs.count() == len(adjudicated.reading_tasks.filter(phase=2).first().findings.all())
    assert set(refs.values_list("decision", flat=True)) == {"auto_consensus"}
    version = lung.dataset_versions.get()
    assert version.version == "1.0.0" and version.frozen
    export = Job.objects.get(kind="datasets.export", project=lung)
    assert export.state == "succeeded", (export.error, export.log)
    assert export.result["zip"].endswith(".zip")
    # ... and a synthetic AI product is scored against it (the evaluation kit)
    evaluation = version.evaluations.get()
    assert evaluation.product == "Demo CAD (synthetic)" and evaluation.kind == "detection"
    assert evaluation.status == "succeeded", (evaluation.problems, evaluation.job.error)
    assert (
        evaluation.split in ("train", "validation") and evaluation.created_by.username == "manager"
    )
    result = evaluation.result
    assert result["counts"]["scans"] >= 1 and len(result["rules"]) >= 3
    cpm = result["figures"]["cpm"]["value"]
    assert cpm is None or 0.0 <= cpm <= 1.0
    assert result["dataset"]["manifest_sha256"] == export.result["manifest_sha256"]
    # The built-in lung model ran over the cases; readers see its proposals.
    run = AssistModelVersion.objects.get(name="lung-nodule", source="builtin")
    assert f"lung-nodule {run.version}: " in out
    assert lung.protocol.prelabel_visibility == "shown"
    assert lung.protocol.unassisted_fraction == 0.25
    assert set(
        Proposal.objects.filter(case__project=lung).values_list("model_version", flat=True)
    ) <= {run.pk}
    disputed = lung.cases.get(state="arbitration")
    roles = set(disputed.arbitration_tasks.values_list("role", flat=True))
    assert roles == {"first", "second"}
    assert disputed.clusters.filter(verdict="dispute").exists()
    # reader4 has the qualification test still to take; the others passed it
    test = lung.qualification_tests.get()
    # three cases, one per attempt, each a case the reader has not read before
    assert test.cases.count() == 3 and test.cases_per_attempt == 1
    assert all(case.reference_findings.exists() for case in test.cases.all())
    assert not lung.memberships.get(user__username="reader4").qualified
    assert not ReadingTask.objects.filter(reader__username="reader4", case__project=lung).exists()
    assert Instance.objects.filter(series__study__patient_pseudo_id__startswith="P").exists()
    _check_fundus_project(out)
    before = Instance.objects.count()
    call_command("demo", *args)  # again: keeps data, resets passwords
    assert Instance.objects.count() == before
    assert "exists, keeping its data" in capsys.readouterr().out


def _check_fundus_project(out: str) -> None:
    """Twelve photographs through the photo import (OP, laterality from the
    manifest, pseudonymised patients, a site per delivery), the blurred one held in
    QC, graded reads with their derived referable field, three grade disagreements
    in arbitration under the protocol's grade rule, one of them signed."""
    from annotation_server.adjudication.models import ArbitrationTask, ReferenceLabels
    from annotation_server.reading.models import CaseLabel
    from annotation_server.web.management.commands import demo

    fundus = Project.objects.get(slug="demo-fundus-dr")
    assert fundus.label_schema.key == "fundus-dr"
    assert (fundus.protocol.grade_rule, fundus.protocol.grade_difference) == ("difference", 1)
    cases = fundus.cases.select_related("series__study", "site")
    assert cases.count() == 2 * len(demo.FUNDUS_VISITS) == 12
    assert {c.series.modality for c in cases} == {"OP"}
    assert {c.site.code for c in cases} == {"S01", "S02"}
    assert len({c.series.study_id for c in cases}) == len(demo.FUNDUS_VISITS)  # a study per visit
    assert not any(c.series.study.patient_pseudo_id.startswith("FP-") for c in cases)
    states = list(cases.values_list("state", flat=True))
    assert states.count("qc") == 1  # the blurred photograph
    by_eye = demo.Command()._fundus_cases(fundus)  # (patient, eye) -> case
    blurred = by_eye[demo.FUNDUS_BLURRED]
    assert blurred.state == "qc" and blurred.qc_status == "fail"
    assert all(c.qc_status in ("pass", "warn", "overridden") for c in cases if c != blurred)
    assert states.count("reading") == 2
    assert states.count("arbitration") == 2 and states.count("adjudicated") == 7
    # graded reads, with the derived referable field stored beside them
    labels = CaseLabel.objects.filter(task__case__project=fundus, task__state="submitted")
    assert labels.count() >= 3 * 8
    for label in labels:
        grade = label.values["dr_grade"]
        assert label.derived["referable_dr"] is (grade >= 2 or label.values["dmo"] == "present")
    # three disagreements went to arbitration; one was decided and signed
    tasks = ArbitrationTask.objects.filter(case__project=fundus)
    assert tasks.count() == 3
    assert all("dr_grade" in t.items["labels"] for t in tasks)
    signed = tasks.get(state=ArbitrationTask.State.SIGNED)
    assert signed.case.state == "adjudicated" and signed.signature_hash
    ref = ReferenceLabels.objects.get(case=signed.case, is_current=True)
    assert ref.decision == "arbitrated" and ref.values["dr_grade"] == 3
    assert signed.case == by_eye[demo.FUNDUS_DISAGREE[0]]
    disputed = {t.case_id for t in tasks}
    assert disputed == {by_eye[key].pk for key in demo.FUNDUS_DISAGREE}
    assert "DR grade arbitrated by" in out and "demo-fundus-dr:" in out
