"""The learning loop: fine-tuning an assist model on a project's adjudicated
cases as a job, the held-out comparison with its parent, and a manager's
promotion (through a real session login)."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.utils import timezone

import fixtures
from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.adjudication.services.reference import replace_with_imported
from annotation_server.adjudication.standard import adjudicated_findings
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.services import index_datasets
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.reading import assist, finetune
from annotation_server.reading.models import AssistModelVersion

pytestmark = pytest.mark.django_db

# Small chest-sized synthetic CT (the built-in model finds nodules on these).
SERIES = {"slices": 40, "matrix": 128, "pixel_spacing": 2.8, "spacing": 2.5, "thickness": 2.5}


def adjudicated_case(project, code: str, seed: int, *, state=Case.State.ADJUDICATED) -> Case:
    """A case with a real series whose planted nodules are its reference standard."""
    datasets, truth = fixtures.build_ct_datasets(seed=seed, nodules=3, **SERIES)
    series = index_datasets(project, datasets).series[0]
    case = Case.objects.create(
        project=project, code=code, series=series, state=state, qc_status="pass"
    )
    replace_with_imported(
        case,
        [
            {
                "finding_type": "nodule",
                "geometry": {"kind": "point", "centre_mm": list(n["centre_mm"])},
                "centre_x_mm": n["centre_mm"][0],
                "centre_y_mm": n["centre_mm"][1],
                "centre_z_mm": n["centre_mm"][2],
                "diameter_mm": n["diameter_mm"],
            }
            for n in truth["nodules"]
        ],
        by=None,
        when=timezone.now(),
    )
    return case


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REFSET_ASSIST_MODEL_CACHE = tmp_path / "cache"


@pytest.fixture
def adjudicated(project, media):
    return [adjudicated_case(project, f"F{i:03d}", seed=300 + i) for i in range(4)]


# ------------------------------------------------------------------ pure parts


def test_the_held_out_split_is_seeded_and_stable_when_cases_are_added():
    train, held = finetune.split_cases(range(1, 41), 0.3, seed=7)
    assert finetune.split_cases(reversed(range(1, 41)), 0.3, seed=7) == (train, held)
    assert sorted(train + held) == list(range(1, 41)) and not set(train) & set(held)
    assert 4 <= len(held) <= 20
    more_train, more_held = finetune.split_cases(range(1, 81), 0.3, seed=7)
    assert set(held) <= set(more_held) and set(train) <= set(more_train)
    assert finetune.split_cases(range(1, 41), 0.3, seed=8) != (train, held)
    # a tiny set still has a case on each side
    for ids in ([5, 9], [1, 2, 3]):
        small_train, small_held = finetune.split_cases(ids, 0.3, seed=0)
        assert small_train and small_held


def test_a_fine_tuned_version_is_named_after_its_parent():
    assert finetune.derived_version("1.0.0") == "1.0.0-ft1"
    assert finetune.derived_version("1.0.0-ft1+ab12cd34") == "1.0.0-ft2"
    assert finetune.derived_version("1.0.0", ["1.0.0-ft1+ab12cd34", "1.0.0"]) == "1.0.0-ft2"


def test_the_reference_standard_of_adjudicated_cases_only(project, media):
    done = adjudicated_case(project, "D001", seed=310)
    reading = adjudicated_case(project, "R001", seed=311, state=Case.State.READING)
    refs = list(ReferenceFinding.objects.filter(case=done).order_by("pk"))
    ReferenceFinding.objects.filter(pk=refs[0].pk).update(status=ReferenceFinding.Status.EXCLUDED)
    ReferenceFinding.objects.filter(pk=refs[1].pk).update(status=ReferenceFinding.Status.REJECTED)
    found = adjudicated_findings(project)
    assert list(found) == [done.pk] and reading.pk not in found
    assert [f["scored"] for f in found[done.pk]].count(False) == 1
    assert len(found[done.pk]) == len(refs) - 1
    assert finetune.reference_cases(project) == found


# ------------------------------------------------------------------ the job


def test_finetune_job_registers_a_new_version_compared_with_its_parent_and_a_manager_promotes_it(
    project, adjudicated, manager, reader_a, outsider, django_capture_on_commit_callbacks, settings
):
    settings.REFSET_INFERENCE_QUEUE = "inference"
    assert jobs.queue_for(finetune.KIND) == "inference"
    parent = assist.resolve_version("lung-nodule")
    api = _signed_in(manager)
    with django_capture_on_commit_callbacks(execute=False):
        response = api.post(
            f"/api/v1/projects/{project.slug}/assist-models/finetune/",
            {"model": "lung-nodule", "epochs": 1},
            content_type="application/json",
        )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == finetune.KIND and job.params["parent_id"] == parent.pk
    assert job.params["version"] == "1.0.0-ft1"
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED, Job.objects.get(pk=job.pk).error
    job.refresh_from_db()

    new = AssistModelVersion.objects.get(name="lung-nodule", version__startswith="1.0.0-ft1+")
    assert new.version == f"1.0.0-ft1+{new.weights_sha256[:8]}"
    assert new.weights_sha256 != parent.weights_sha256 and not new.promoted
    assert assist.resolve_version("lung-nodule") == parent  # never promoted by itself
    assert assist.load_predictor(new, device="cpu").sha256 == new.weights_sha256

    # the split: seeded, recorded, every adjudicated case on exactly one side
    split = job.result["split"]
    codes = {c.code for c in adjudicated}
    assert set(split["training_cases"]) | set(split["held_out_cases"]) == codes
    assert not set(split["training_cases"]) & set(split["held_out_cases"])
    assert split["held_out_cases"] and split["seed"] == 0

    # the comparison, in the job's result and on the new version's card
    comparison = job.result["comparison"]
    assert comparison["held_out_cases"] == len(split["held_out_cases"])
    assert comparison["held_out_nodules"] == 3 * len(split["held_out_cases"])
    assert comparison["parent"]["version"] == parent.version
    assert comparison["parent"]["weights_sha256"] == parent.weights_sha256
    for side in ("parent", "new"):
        assert 0.0 <= comparison[side]["cpm"] <= 1.0
    diff = comparison["cpm_difference"]
    assert diff["value"] == pytest.approx(
        comparison["new"]["cpm"] - comparison["parent"]["cpm"], abs=2e-4
    )
    performance = new.card["performance"]
    assert performance["cpm"] == comparison["new"]["cpm"]
    assert performance["parent_cpm"] == comparison["parent"]["cpm"]
    assert performance["training_cases"] == len(split["training_cases"])
    assert performance["held_out_scans"] == len(split["held_out_cases"])
    assert parent.version in new.card["training_data"]
    assert parent.weights_sha256 in new.card["training_data"]
    assert "finetune_assist_model" in new.card["performance_command"]
    assert job.result["parent"] == {"id": parent.pk, "version": parent.version}
    registered = AuditEvent.objects.get(action="assist_model.registered", object_id=str(new.pk))
    assert registered.data["trained"]["job"] == job.pk
    assert AuditEvent.objects.filter(
        action="assist_model.finetune_queued", project_id=project.pk
    ).exists()

    # a second delivery of the job registers nothing more
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    assert AssistModelVersion.objects.filter(name="lung-nodule").count() == 2

    # the manager's list: cards and the comparison
    listed = api.get(f"/api/v1/projects/{project.slug}/assist-models/").json()["versions"]
    by_id = {v["id"]: v for v in listed}
    assert by_id[new.pk]["comparison"] == comparison
    assert by_id[new.pk]["parent"]["version"] == parent.version
    assert by_id[parent.pk]["runs_by_default"] and not by_id[new.pk]["runs_by_default"]
    page = api.get(f"/projects/{project.slug}/assist-models/")
    assert page.status_code == 200
    assert new.version in page.content.decode() and f"promote-{new.pk}" in page.content.decode()

    # a reader of the project may not see, start or promote; an outsider learns nothing
    for persona, code in ((reader_a, 403), (outsider, 404)):
        other = _signed_in(persona)
        assert other.get(f"/api/v1/projects/{project.slug}/assist-models/").status_code == code
        assert (
            other.post(
                f"/api/v1/projects/{project.slug}/assist-models/{new.pk}/promote/"
            ).status_code
            == code
        )
        assert (
            other.post(
                f"/api/v1/projects/{project.slug}/assist-models/finetune/",
                {"model": "lung-nodule"},
                content_type="application/json",
            ).status_code
            == code
        )
        assert other.get(f"/projects/{project.slug}/assist-models/").status_code == code
    assert not AssistModelVersion.objects.filter(promoted=True).exists()

    # promote: exactly one promoted version per model name, audited
    response = api.post(
        f"/api/v1/projects/{project.slug}/assist-models/{new.pk}/promote/",
        {"reason": "better CPM on held-out cases"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["promoted"] is True
    assert assist.resolve_version("lung-nodule") == new
    event = AuditEvent.objects.get(action="assist_model.promoted", object_id=str(new.pk))
    assert event.actor_id == manager.pk and event.project_id == project.pk
    assert event.data["reason"] == "better CPM on held-out cases" and event.data["previous"] == []
    # back to the parent, from the page's form
    response = api.post(f"/projects/{project.slug}/assist-models/{parent.pk}/promote/")
    assert response.status_code == 302
    assert list(
        AssistModelVersion.objects.filter(name="lung-nodule", promoted=True).values_list(
            "pk", flat=True
        )
    ) == [parent.pk]
    back = AuditEvent.objects.get(action="assist_model.promoted", object_id=str(parent.pk))
    assert back.data["previous"] == [new.version]


def test_fine_tuning_needs_two_adjudicated_cases(project, manager, media):
    adjudicated_case(project, "ONE", seed=320)
    api = _signed_in(manager)
    response = api.post(
        f"/api/v1/projects/{project.slug}/assist-models/finetune/",
        {"model": "lung-nodule"},
        content_type="application/json",
    )
    assert response.status_code == 409 and "two adjudicated cases" in response.json()["detail"]
    assert not Job.objects.filter(kind=finetune.KIND).exists()


def test_a_version_of_no_concern_to_the_project_cannot_be_promoted_from_it(project, manager):
    stranger = AssistModelVersion.objects.create(
        name="elsewhere",
        version="1",
        task="detection",
        weights_sha256="1" * 64,
        source=AssistModelVersion.Source.PLUGIN,
    )
    response = _signed_in(manager).post(
        f"/api/v1/projects/{project.slug}/assist-models/{stranger.pk}/promote/"
    )
    assert response.status_code == 404
    assert not AssistModelVersion.objects.filter(promoted=True).exists()


def test_finetune_command_queues_the_job(project, adjudicated, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        call_command(
            "finetune_assist_model", "--project", project.slug, "--model", "lung-nodule",
            "--epochs", "2",
        )  # fmt: skip
    job = Job.objects.get(kind=finetune.KIND)
    assert job.params["epochs"] == 2 and job.params["model"] == "lung-nodule"
    assert job.project_id == project.pk


def _signed_in(user):
    from django.test import Client

    from tests import factories

    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=user.username, password=factories.PASSWORD)
    return client
