"""Model assistance in the app: model versions, proposals, who sees them, what
readers do with them, and the summary per model version."""

from __future__ import annotations

import pytest
from django.core.management import call_command

import fixtures
from annotation_server.agreement.assist import assist_summary
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.services import index_datasets
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects import arms
from annotation_server.projects.models import Case, ReadingProtocol
from annotation_server.reading import assist, services
from annotation_server.reading.models import (
    AssistModelVersion,
    CaseProbability,
    Finding,
    Proposal,
    ProposalDisposition,
)
from assist_models.interface import Prediction
from assist_models.interface import Proposal as ModelProposal
from tests import factories

pytestmark = pytest.mark.django_db

Visibility = ReadingProtocol.PrelabelVisibility


def _version(name="test-model", version="1.0") -> AssistModelVersion:
    return AssistModelVersion.objects.create(
        name=name,
        version=version,
        task="detection",
        card={"name": name},
        weights_sha256=(name + version).encode().hex()[:64].ljust(64, "0"),
        source=AssistModelVersion.Source.PLUGIN,
    )


def _propose(case, row, score, x=10.0, slice_index=5):
    geometry = factories.nodule_geometry(x=x, slice_index=slice_index)
    return Proposal.objects.create(
        case=case,
        series=case.series,
        model_version=row,
        finding_type="nodule",
        geometry=geometry,
        centre_x_mm=geometry["centre_mm"][0],
        centre_y_mm=geometry["centre_mm"][1],
        centre_z_mm=geometry["centre_mm"][2],
        attributes=factories.complete_nodule_attributes(),
        score=score,
        threshold=0.3,
    )


def _protocol(project, **values):
    ReadingProtocol.objects.filter(project=project).update(**values)
    project.refresh_from_db()
    return project.protocol


# ------------------------------------------------------------------ visibility


def test_readers_see_no_proposals_while_the_protocol_hides_them(project, case, tasks, reader_a):
    _propose(case, _version(), 0.9)
    assert not Proposal.objects.for_task(tasks["reader_a"]).exists()
    assert not Proposal.objects.visible_to(reader_a).exists()


def test_reader_sees_own_cases_proposals_at_or_above_the_minimum_confidence(
    project, case, tasks, reader_a, outsider
):
    _protocol(project, prelabel_visibility=Visibility.SHOWN, prelabel_min_confidence=0.5)
    row = _version()
    high, low = _propose(case, row, 0.9), _propose(case, row, 0.4, x=40)
    other_case = factories.CaseFactory(project=project, code="C0002")
    _propose(other_case, row, 0.95)  # not a case reader_a reads
    assert list(Proposal.objects.for_task(tasks["reader_a"])) == [high]
    assert list(Proposal.objects.visible_to(reader_a)) == [high]
    assert low not in Proposal.objects.visible_to(reader_a)
    assert not Proposal.objects.visible_to(outsider).exists()


def test_review_only_proposals_stay_hidden_in_the_blind_phase(project, case, reader_a):
    _protocol(project, prelabel_visibility=Visibility.REVIEW, review_phase=True)
    proposal = _propose(case, _version(), 0.9)
    blind = factories.TaskFactory(case=case, reader=reader_a, phase=1)
    review = factories.TaskFactory(case=case, reader=reader_a, phase=2)
    assert not Proposal.objects.for_task(blind).exists()
    assert list(Proposal.objects.for_task(review)) == [proposal]


def test_no_proposals_on_cases_of_the_no_assistance_arm(project, reader_a):
    protocol = _protocol(
        project,
        prelabel_visibility=Visibility.SHOWN,
        unassisted_fraction=0.5,
        unassisted_seed=11,
    )
    row = _version()
    cases = [factories.CaseFactory(project=project, code=f"A{i:03d}") for i in range(12)]
    tasks = {c.pk: factories.TaskFactory(case=c, reader=reader_a) for c in cases}
    for c in cases:
        _propose(c, row, 0.9)
    assisted, without = arms.split([c.pk for c in cases], 0.5, 11)
    assert assisted and without, "the seed splits these twelve cases"
    for case_id in without:
        assert protocol.case_unassisted(case_id)
        assert not Proposal.objects.for_task(tasks[case_id]).exists()
    for case_id in assisted:
        assert Proposal.objects.for_task(tasks[case_id]).count() == 1
    assert set(Proposal.objects.visible_to(reader_a).values_list("case_id", flat=True)) == set(
        assisted
    )


def test_proposals_never_cross_projects(project, case, tasks, reader_a):
    _protocol(project, prelabel_visibility=Visibility.SHOWN)
    other = factories.ProjectFactory(slug="other-lung")
    ReadingProtocol.objects.filter(project=other).update(prelabel_visibility=Visibility.SHOWN)
    other_case = factories.CaseFactory(project=other, code="O0001")
    foreign = _propose(other_case, _version(), 0.99)
    assert foreign not in Proposal.objects.visible_to(reader_a)
    assert foreign not in Proposal.objects.for_task(tasks["reader_a"])


# ------------------------------------------------------------------ dispositions


def test_accept_edit_reject_record_origin_and_disposition(project, case, tasks, reader_a):
    _protocol(project, prelabel_visibility=Visibility.SHOWN)
    row = _version(version="2.1")
    a, b, c = _propose(case, row, 0.9), _propose(case, row, 0.8, x=40), _propose(case, row, 0.7)
    task = tasks["reader_a"]

    accepted = assist.accept(task, a.pk, reader_a)
    finding = accepted.finding
    assert finding.source == Finding.Source.MODEL_ACCEPTED
    assert (finding.model_name, finding.model_version, finding.proposal_id) == (
        "test-model",
        "2.1",
        a.pk,
    )
    assert finding.geometry == a.geometry

    moved = factories.nodule_geometry(x=40, slice_index=5)
    moved["shapes"][0]["points"] = [[97, 115], [107, 125]]  # 2 px to the right
    edited = assist.accept_edited(task, b.pk, reader_a, geometry=moved)
    assert edited.action == ProposalDisposition.Action.EDITED
    assert edited.finding.source == Finding.Source.MODEL_EDITED
    assert 0.5 < edited.dice < 1.0 and edited.hd95_mm > 0

    rejected = assist.reject(task, c.pk, reader_a)
    assert rejected.action == ProposalDisposition.Action.REJECTED and rejected.finding is None
    with pytest.raises(assist.AssistError):
        assist.reject(task, c.pk, reader_a)  # decided once per read


def test_a_reader_cannot_act_on_a_proposal_not_shown_to_them(project, case, tasks, reader_b):
    proposal = _propose(case, _version(), 0.9)  # protocol hides proposals
    with pytest.raises(assist.ProposalNotAvailable):
        assist.accept(tasks["reader_b"], proposal.pk, reader_b)


def test_endpoints_list_accept_edit_reject(project, case, tasks, reader_a, reader_b, client_for):
    _protocol(project, prelabel_visibility=Visibility.SHOWN, prelabel_min_confidence=0.5)
    row = _version()
    a, b, c = _propose(case, row, 0.9), _propose(case, row, 0.8, x=40), _propose(case, row, 0.6)
    hidden = _propose(case, row, 0.2)
    task = tasks["reader_a"]
    client = client_for(reader_a)
    base = f"/api/v1/reading-tasks/{task.pk}/proposals/"
    listed = client.get(base)
    assert listed.status_code == 200
    assert [p["id"] for p in listed.json()] == [a.pk, b.pk, c.pk]
    assert listed.json()[0]["model"] == "test-model" and listed.json()[0]["disposition"] is None

    assert client.post(f"{base}{a.pk}/accept/").status_code == 201
    edited = factories.nodule_geometry(x=40)
    r = client.post(f"{base}{b.pk}/accept-edited/", {"geometry": edited}, format="json")
    assert r.status_code == 201, r.json()
    assert client.post(f"{base}{c.pk}/reject/").status_code == 201
    assert client.post(f"{base}{hidden.pk}/accept/").status_code == 404
    actions = {p["id"]: p["disposition"] for p in client.get(base).json()}
    assert actions == {a.pk: "accepted", b.pk: "edited", c.pk: "rejected"}
    sources = set(Finding.objects.filter(task=task).values_list("source", flat=True))
    assert sources == {"model_accepted", "model_edited"}

    # another reader cannot see or decide reader_a's read
    other = client_for(reader_b)
    assert other.get(base).status_code == 404
    assert other.post(f"{base}{c.pk}/reject/").status_code == 404


# ------------------------------------------------------------------ summary


def test_summary_counts_dispositions_misses_and_time(project, reader_a, reader_b):
    _protocol(project, prelabel_visibility=Visibility.SHOWN)
    row = _version()
    assisted_case = factories.CaseFactory(project=project, code="S0001")
    plain_case = factories.CaseFactory(project=project, code="S0002")
    p1 = _propose(assisted_case, row, 0.9, x=10)
    p2 = _propose(assisted_case, row, 0.8, x=60)
    t1 = factories.TaskFactory(case=assisted_case, reader=reader_a)
    t2 = factories.TaskFactory(case=plain_case, reader=reader_a)
    assist.accept(t1, p1.pk, reader_a)
    assist.reject(t1, p2.pk, reader_a)
    # a finding of the reader's own that no proposal is near: a miss
    services.save_finding(
        t1,
        reader_a,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=-80, slice_index=7),
        attributes=factories.complete_nodule_attributes(),
    )
    for task, seconds in ((t1, 60), (t2, 100)):
        type(task).objects.filter(pk=task.pk).update(state="submitted", active_seconds=seconds)
    summary = assist_summary(project, row)
    assert summary["proposals"] == 2 and summary["decided"] == 2
    assert summary["accepted"] == 1 and summary["rejected"] == 1
    assert summary["acceptance_rate"] == 0.5
    assert summary["misses"] == 1 and summary["manual_findings_in_assisted_reads"] == 1
    assert summary["reading_seconds_with"] == {"n": 1, "mean": 60.0, "median": 60.0}
    assert summary["reading_seconds_without"] == {"n": 1, "mean": 100.0, "median": 100.0}


# ------------------------------------------------------------------ running


class _Fixed:
    """A predictor that proposes one nodule per series."""

    def predict(self, series, *, threshold=None):
        geometry = factories.nodule_geometry(slice_index=min(1, series.shape[0] - 1))
        return Prediction(
            model="test-model",
            version="1.0",
            weights_sha256="0" * 64,
            threshold=threshold,
            proposals=(ModelProposal("nodule", geometry, 0.77, {"nodule_type": "solid"}),),
        )


def _real_case(project, code, seed, **opts):
    datasets, truth = fixtures.build_ct_datasets(seed=seed, **opts)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code=code, series=series, state="reading", qc_status="pass"
    )
    return case, truth


def test_rerunning_with_a_new_version_keeps_the_old_proposals(project):
    case, _ = _real_case(project, "R0001", seed=3, slices=4, matrix=64)
    old, new = _version(version="1.0"), _version(version="2.0")
    first = assist.run_prelabel(project, old, predictor=_Fixed(), threshold=0.5, job_id=None)
    assert first.cases == 1 and first.proposals == 1
    assist.run_prelabel(project, new, predictor=_Fixed(), threshold=0.6)
    rows = Proposal.objects.filter(case=case).order_by("id")
    assert [(p.model_version.version, p.current, p.threshold) for p in rows] == [
        ("1.0", False, 0.5),
        ("2.0", True, 0.6),
    ]


def test_prelabel_job_runs_the_builtin_lung_model_on_a_synthetic_series(
    project, manager, django_capture_on_commit_callbacks, settings
):
    case, truth = _real_case(
        project,
        "L0001",
        seed=5,
        slices=48,
        matrix=128,
        pixel_spacing=2.8,
        spacing=2.5,
        thickness=2.5,
    )
    settings.REFSET_INFERENCE_QUEUE = "inference"
    assert jobs.queue_for("reading.prelabel") == "inference"
    assert jobs.queue_for("projects.assign") is None
    row = assist.resolve_version("lung-nodule")
    assert row.source == "builtin" and row.weights_sha256 == row.card["weights_sha256"]
    with django_capture_on_commit_callbacks(execute=False):
        job = assist.queue_prelabel(project, row, by=manager, threshold=0.5)
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.progress == 100 and job.result["cases"] == 1
    proposals = Proposal.objects.filter(case=case, model_version=row)
    assert proposals.count() == job.result["proposals"] > 0
    assert all(p.score >= 0.5 and p.threshold == 0.5 and p.job_id == job.pk for p in proposals)
    # the planted nodules are among the proposals (within 10 mm of a centre)
    centres = [(p.centre_x_mm, p.centre_y_mm, p.centre_z_mm) for p in proposals]
    found = sum(
        any(
            sum((a - b) ** 2 for a, b in zip(c, n["centre_mm"], strict=True)) < 100 for c in centres
        )
        for n in truth["nodules"]
    )
    assert found >= 2, (truth["nodules"], centres[:5])
    assert AuditEvent.objects.filter(action="assist_model.run", object_id=str(row.pk)).exists()
    # a second delivery of the same job changes nothing; a rerun skips the case
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    with django_capture_on_commit_callbacks(execute=False):
        again = assist.queue_prelabel(project, row, by=manager)
    jobs.execute(again.pk)
    again.refresh_from_db()
    assert again.result["skipped"] == 1 and proposals.count() == job.result["proposals"]


def test_register_assist_model_command_stores_and_runs_a_torchscript_plugin(
    project, tmp_path, settings, django_capture_on_commit_callbacks
):
    from tests.assist_models.test_torchscript import DETECTION, Bright, write_plugin

    settings.REFSET_ASSIST_MODEL_CACHE = tmp_path / "cache"
    settings.MEDIA_ROOT = str(tmp_path / "media")
    folder = write_plugin(tmp_path / "blocks", Bright(), DETECTION)
    call_command("register_assist_model", str(folder))
    row = AssistModelVersion.objects.get(name="bright-blocks")
    assert row.source == "plugin" and row.path.startswith("assist-models/")
    assert AuditEvent.objects.filter(action="assist_model.registered", object_id=str(row.pk))
    case, _ = _real_case(project, "P0001", seed=4, slices=4, matrix=64)
    cases_file = tmp_path / "cases.txt"
    cases_file.write_text("P0001\n", encoding="utf-8")
    with django_capture_on_commit_callbacks(execute=False):
        call_command(
            "prelabel",
            "--project",
            project.slug,
            "--model",
            "bright-blocks",
            "--cases",
            str(cases_file),
            "--threshold",
            "0.5",
        )
    job = Job.objects.get(kind="reading.prelabel")
    assert job.params["case_ids"] == [case.pk]
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED, Job.objects.get(pk=job.pk).error
    cached = settings.REFSET_ASSIST_MODEL_CACHE / row.path.rsplit("/", 1)[1] / "model.pt"
    assert cached.is_file()
    with pytest.raises(Exception, match="already registered"):
        call_command("register_assist_model", str(folder))


def test_train_assist_model_registers_a_new_version_that_loads(project, tmp_path, settings):
    settings.REFSET_ASSIST_MODEL_CACHE = tmp_path / "cache"
    settings.MEDIA_ROOT = str(tmp_path / "media")
    committed = assist.builtin_version("lung-nodule")
    call_command(
        "train_assist_model",
        "lung-nodule",
        "--out",
        str(tmp_path / "trained"),
        "--series",
        "2",
        "--steps",
        "20",
        "--nodules",
        "3",
        "--slices",
        "40",
        "--seed",
        "1",
    )
    row = AssistModelVersion.objects.exclude(pk=committed.pk).get(name="lung-nodule")
    assert row.version == f"{committed.version}+{row.weights_sha256[:8]}"
    assert row.path.startswith("assist-models/") and row.source == "builtin"
    assert AuditEvent.objects.filter(action="assist_model.registered", object_id=str(row.pk))
    predictor = assist.load_predictor(row, device="cpu")
    assert predictor.sha256 == row.weights_sha256
    # without --version the committed weights run until the new version is promoted
    assert assist.resolve_version("lung-nodule") == committed
    assert assist.resolve_version("lung-nodule", row.version) == row
    AssistModelVersion.objects.filter(pk=row.pk).update(promoted=True)
    assert assist.resolve_version("lung-nodule") == row


def test_inference_jobs_are_sent_to_the_inference_queue(settings, monkeypatch):
    from annotation_server.jobs import tasks

    sent = []
    monkeypatch.setattr(tasks.run_job, "apply_async", lambda args, queue: sent.append(queue))
    monkeypatch.setattr(tasks.run_job, "delay", lambda job_id: sent.append("default"))
    settings.REFSET_INFERENCE_QUEUE = "gpu-inference"
    jobs.dispatch(1, "reading.prelabel")
    jobs.dispatch(2, "projects.assign")
    settings.REFSET_INFERENCE_QUEUE = ""
    jobs.dispatch(3, "reading.prelabel")
    assert sent == ["gpu-inference", "default", "default"]


def test_the_protocols_assistance_settings_through_the_api(session_client_for, project, manager):
    api = session_client_for(manager)
    body = {
        "protocol": {
            "prelabel_visibility": "review",
            "prelabel_min_confidence": 0.4,
            "unassisted_fraction": 0.25,
            "unassisted_seed": 17,
        }
    }
    response = api.patch(f"/api/v1/projects/{project.slug}/", body, format="json")
    assert response.status_code == 200, response.json()
    protocol = response.json()["protocol"]
    assert protocol["prelabel_visibility"] == "review" and protocol["unassisted_seed"] == 17
    event = AuditEvent.objects.get(action="project.protocol_updated", project_id=project.pk)
    assert event.data["changed"]["unassisted_fraction"] == [0.0, 0.25]
    refused = api.patch(
        f"/api/v1/projects/{project.slug}/",
        {"protocol": {"unassisted_fraction": 1.5}},
        format="json",
    )
    assert refused.status_code == 400 and "unassisted_fraction" in str(refused.json())


# ------------------------------------------------------------------ case-level estimates


def _estimate(case, row, probabilities, job=None):
    prediction = Prediction(
        model=row.name,
        version=row.version,
        weights_sha256=row.weights_sha256,
        threshold=0.5,
        proposals=(),
        case_probabilities=probabilities,
    )
    return assist.store_prediction(case, row, prediction, job_id=job.pk if job else None)


def test_case_level_estimates_are_stored_and_shown_as_proposals_are(
    project, case, tasks, reader_a, manager, session_client_for
):
    row = _version("chest-radiograph", "1.0")
    runs = [Job.objects.create(kind="reading.prelabel", project=project) for _ in range(2)]
    _estimate(case, row, {"nodule": 0.87654, "under_exposed": 0.01}, runs[0])
    _estimate(case, row, {"nodule": 0.5, "under_exposed": 0.9}, runs[1])  # the old row stays
    assert CaseProbability.objects.filter(case=case).count() == 2
    current = CaseProbability.objects.get(case=case, current=True)
    assert current.probabilities == {"nodule": 0.5, "under_exposed": 0.9}
    url = f"/api/v1/reading-tasks/{tasks['reader_a'].pk}/case-probabilities/"
    reader = session_client_for(reader_a)
    assert reader.get(url).json() == []  # the protocol hides model output
    _protocol(project, prelabel_visibility=Visibility.SHOWN)
    (shown,) = reader.get(url).json()
    assert shown["model"] == "chest-radiograph" and shown["probabilities"]["under_exposed"] == 0.9
    (seen,) = session_client_for(manager).get(url).json()
    assert seen["id"] == current.pk
    _protocol(project, unassisted_fraction=1.0)  # every case read without assistance
    assert reader.get(url).json() == []
