"""A Celery worker killed (SIGKILL) in the middle of a job, for every job kind in
annotation_server/registry.py: the Job row never stays "running" -- another
worker takes it over once the dead one's lease has run out and finishes it --,
the re-run completes without doubling anything, and no stored file under its
final key is partial.

Each kind gets a real job with valid parameters; the worker that runs it first
(the victim, started per test on a queue of its own) has the test-only delay
(REFSET_TEST_JOB_DELAY_S / _AT, jobs.services) for that kind only: at a known
progress/log call it logs "test delay" and sleeps, and is killed there, with
SIGKILL to it alone (what it forked must end by itself). The successor (one per
module, started once, consuming another queue) finds the dead worker's job by
its expired lease (jobs.services.recover_stale) and runs it again, with the
follow-up jobs the re-run queues. No other worker runs meanwhile: a second
delayed worker could take the job over instead (every worker recovers stale
jobs) and then sit in the delay on its follow-ups. A kind without a case here
fails `test_every_job_kind_has_a_fault_case`.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

import fixtures
from annotation_server import registry
from annotation_server.adjudication.models import ReferenceFinding, Settlement
from annotation_server.audit import services as audit
from annotation_server.celery import app
from annotation_server.imaging import stream_cache
from annotation_server.imaging.delivery import series_records, series_rows_and_etag
from annotation_server.imaging.ingest.uploads import queue_import
from annotation_server.imaging.models import Instance, PacsConnection, Series
from annotation_server.imaging.services import index_datasets
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.quality.models import QcReport
from annotation_server.reading.models import ReadingTask
from fixtures.dicom_common import dataset_bytes
from tests.adjudication.conftest import add_finding, ellipse, grid_case, submit_all  # noqa: F401
from tests.faults.workers import (
    job_row,
    kill_worker,
    start_worker,
    stop_worker,
    survivors,
    wait_for,
)
from tests.orthanc import run_orthanc
from tests.outbox.conftest import ct, settled_case  # noqa: F401

pytestmark = [
    pytest.mark.celery,
    pytest.mark.services,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    # One xdist worker runs them all: each starts Celery workers of its own.
    pytest.mark.xdist_group("faults-worker-kill"),
]

ANCHOR_KEY = "test-anchor-key"


@dataclass
class Setup:
    """What one kind's test has: the fixtures and the worker environment."""

    request: pytest.FixtureRequest
    project: object
    manager: object
    env: dict = field(default_factory=dict)  # for the victim worker

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)


@dataclass
class FaultCase:
    build: Callable[[Setup], Job]  # make the data, enqueue the job
    at: int  # the progress/log call of the job where its first worker is killed
    check: Callable[[Setup, Job], None]  # what the finished re-run must show


def _real_series(project, seed: int, slices: int = 6) -> Series:
    datasets, _ = fixtures.build_ct_datasets(slices=slices, seed=seed, matrix=64)
    return index_datasets(project, datasets).series[0]


def _real_cases(setup: Setup, n: int, state=Case.State.QC) -> list[Case]:
    return [
        Case.objects.create(
            project=setup.project,
            code=f"K{i:04d}",
            series=_real_series(setup.project, seed=60 + i),
            state=state,
            qc_status="pass",
        )
        for i in range(n)
    ]


# reading.prelabel -------------------------------------------------------------------


def build_prelabel(setup: Setup) -> Job:
    from annotation_server.reading import assist

    for i in range(2):  # chest-sized synthetic CT the built-in model finds nodules on
        datasets, _ = fixtures.build_ct_datasets(
            slices=48, seed=70 + i, matrix=128, pixel_spacing=2.8, spacing=2.5, thickness=2.5
        )
        Case.objects.create(
            project=setup.project,
            code=f"PL{i:03d}",
            series=index_datasets(setup.project, datasets).series[0],
            state=Case.State.READING,
            qc_status="pass",
        )
    row = assist.resolve_version("lung-nodule")
    return assist.queue_prelabel(setup.project, row, by=setup.manager, threshold=0.5)


def check_prelabel(setup: Setup, job: Job) -> None:
    from annotation_server.reading.models import Proposal

    # Killed after the first case's proposals were stored: the re-run replaces
    # them (same job) instead of adding a second set.
    assert job.result["cases"] == 2 and job.result["failed"] == 0, job.result
    rows = Proposal.objects.filter(case__project=setup.project)
    assert rows.count() == job.result["proposals"] > 0
    assert set(rows.values_list("job_id", flat=True)) == {job.pk}
    keys = list(rows.values_list("case_id", "centre_x_mm", "centre_y_mm", "centre_z_mm"))
    assert len(keys) == len(set(keys)), "a proposal stored twice"


# reading.finetune -------------------------------------------------------------------


def build_finetune(setup: Setup) -> Job:
    from annotation_server.reading import finetune
    from tests.assist.test_finetune import adjudicated_case

    for i in range(3):
        adjudicated_case(setup.project, f"FT{i:03d}", seed=80 + i)
    return finetune.queue_finetune(setup.project, "lung-nodule", by=setup.manager, epochs=1)


def check_finetune(setup: Setup, job: Job) -> None:
    from annotation_server.audit.models import AuditEvent
    from annotation_server.reading.models import AssistModelVersion

    # Killed right after the new version was registered: the re-run finds it (the
    # registration's audit event names the job) instead of training and
    # registering a second one.
    (new,) = AssistModelVersion.objects.filter(name="lung-nodule", version__contains="-ft1+")
    assert job.result["version"]["id"] == new.pk and not new.promoted
    assert job.result["comparison"]["held_out_cases"] >= 1
    events = AuditEvent.objects.filter(action="assist_model.registered", object_id=str(new.pk))
    assert events.count() == 1 and events.get().data["trained"]["job"] == job.pk


# imaging.import ---------------------------------------------------------------------

IMPORT_SLICES = 24


def build_import(setup: Setup) -> Job:
    datasets, _ = fixtures.build_ct_datasets(slices=IMPORT_SLICES, seed=41, matrix=64)
    files = [
        SimpleUploadedFile(f"CT_{i:04d}.dcm", dataset_bytes(ds), "application/dicom")
        for i, ds in enumerate(datasets)
    ]
    return queue_import(setup.project, files, user=setup.manager)


def check_import(setup: Setup, job: Job) -> None:
    # Killed after 10 files were stored, none indexed: the re-run stores the rest
    # (the first ten are found complete) and indexes every one, once.
    assert job.result["summary"]["imported"] == IMPORT_SLICES, job.result["summary"]
    assert Instance.objects.filter(series__study__project=setup.project).count() == IMPORT_SLICES
    assert Series.objects.filter(study__project=setup.project).count() == 1
    assert Case.objects.filter(project=setup.project).count() == 1
    for upload in job.params["uploads"]:
        assert not default_storage.exists(upload["key"]), "uploads are removed after the import"


# imaging.pull_pacs ------------------------------------------------------------------

PACS_SLICES = 12


@pytest.fixture(scope="module")
def orthanc_study(tmp_path_factory):
    """A throw-away Orthanc holding one 12-slice CT; yields (handle, truth)."""
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as handle:
        folder = tmp_path_factory.mktemp("pacs-ct")
        truth = fixtures.generate_ct(folder, slices=PACS_SLICES, seed=43, matrix=64)
        for path in sorted(folder.glob("*.dcm")):
            handle.upload(path)
        yield handle, truth


def build_pull(setup: Setup) -> Job:
    handle, truth = setup.fixture("orthanc_study")
    connection = PacsConnection.objects.create(
        project=setup.project, name="PACS", base_url=handle.dicomweb_url
    )
    return jobs.enqueue(
        "imaging.pull_pacs",
        project=setup.project,
        user=setup.manager,
        params={"connection_id": connection.pk, "study_uids": [truth["study_instance_uid"]]},
    )


def check_pull(setup: Setup, job: Job) -> None:
    assert job.result["summary"]["imported"] == PACS_SLICES, job.result["summary"]
    assert Instance.objects.filter(series__study__project=setup.project).count() == PACS_SLICES


# imaging.build_series_streams -------------------------------------------------------


def build_streams(setup: Setup) -> Job:
    ids = [_real_series(setup.project, seed=50 + i).pk for i in range(2)]
    return jobs.enqueue(
        "imaging.build_series_streams", project=setup.project, params={"series_ids": ids}
    )


def check_streams(setup: Setup, job: Job) -> None:
    for series in Series.objects.filter(pk__in=job.params["series_ids"]):
        assert default_storage.exists(stream_cache.key_for(series_rows_and_etag(series)[1]))
    assert job.result == {"built": 1, "series": 2}  # the first was stored before the kill


# qc.check_cases ---------------------------------------------------------------------


def build_qc(setup: Setup) -> Job:
    ids = [case.pk for case in _real_cases(setup, 2)]
    return jobs.enqueue("qc.check_cases", project=setup.project, params={"case_ids": ids})


def check_qc(setup: Setup, job: Job) -> None:
    assert job.result["checked"] == 2
    for case_id in job.params["case_ids"]:
        assert QcReport.objects.filter(case_id=case_id).exists()


# projects.assign --------------------------------------------------------------------


def build_assign(setup: Setup) -> Job:
    _real_cases(setup, 2)
    return jobs.enqueue(
        "projects.assign",
        project=setup.project,
        user=setup.manager,
        params={"project_id": setup.project.pk},
    )


def check_assign(setup: Setup, job: Job) -> None:
    # The first case was assigned before the kill: the re-run finds it full.
    assert job.result["assigned_tasks"] == 3 and job.result["already_full"] == 1, job.result
    for case in Case.objects.filter(project=setup.project):
        readers = ReadingTask.objects.filter(case=case, phase=1).values_list("reader", flat=True)
        assert len(readers) == len(set(readers)) == 3, case.code


# adjudication.settle ----------------------------------------------------------------


def build_settle(setup: Setup) -> Job:
    case = setup.fixture("grid_case")
    tasks = setup.fixture("tasks")
    protocol = setup.project.protocol
    protocol.auto_accept_min_readers = 3
    protocol.match_rule, protocol.match_threshold = "centre_distance", 5.0
    protocol.save()
    for offset, task in zip((0, 2, 4), tasks.values(), strict=True):
        add_finding(task, ellipse(200 + offset, 220, [10, 11, 12]))
    submit_all(tasks)
    Case.objects.filter(pk=case.pk).update(state=Case.State.READING)
    return jobs.enqueue("adjudication.settle", project=setup.project, params={"case_id": case.pk})


def check_settle(setup: Setup, job: Job) -> None:
    # Killed after the settlement committed: the re-run finds it and adds nothing.
    case_id = job.params["case_id"]
    assert Settlement.objects.filter(case_id=case_id).count() == 1
    assert ReferenceFinding.objects.filter(case_id=case_id).count() == 1
    assert job.result["outcome"] == Settlement.Outcome.ADJUDICATED
    assert audit.verify_chain().ok


# audit.verify_chain / audit.anchor --------------------------------------------------


def build_verify(setup: Setup) -> Job:
    for i in range(3):
        audit.record("test.event", data={"i": i})
    return jobs.enqueue("audit.verify_chain")


def check_verify(setup: Setup, job: Job) -> None:
    assert job.result["ok"] is True and job.result["checked"] >= 3


def build_anchor(setup: Setup) -> Job:
    for i in range(3):
        audit.record("test.event", data={"i": i})
    return jobs.enqueue("audit.anchor")


def check_anchor(setup: Setup, job: Job) -> None:
    # Killed after the anchor was stored: the re-run stores another of the same head.
    assert job.result["count"] >= 3
    assert len(audit.anchor_names()) == 2
    report = audit.verify_chain()
    assert report.ok, report.problem
    # The database is flushed after this test, the storage is the module's: the
    # anchors must go with the events they anchor.
    shutil.rmtree(Path(default_storage.path(audit.ANCHOR_DIR)))


# agreement.compute ------------------------------------------------------------------


def build_agreement(setup: Setup) -> Job:
    from tests.agreement.seed import seed_reads

    readers = {name: setup.fixture(f"reader_{name}") for name in "abc"}
    seed_reads(setup.project, readers)
    return jobs.enqueue(
        "agreement.compute",
        project=setup.project,
        user=setup.manager,
        params={"project_id": setup.project.pk},
    )


def check_agreement(setup: Setup, job: Job) -> None:
    # Killed after the report was stored: the re-run finds it current, stores none.
    from annotation_server.agreement.models import AgreementReport

    reports = AgreementReport.objects.filter(project=setup.project)
    assert list(reports.values_list("pk", flat=True)) == [job.result["report_id"]]
    assert job.result["cases"] == 4, job.result


# datasets.export ----------------------------------------------------------------------


def build_export(setup: Setup) -> Job:
    from annotation_server.datasets import services as datasets
    from annotation_server.datasets.export_jobs import queue_export
    from tests.datasets.conftest import make_case

    protocol = setup.project.protocol
    protocol.auto_accept_min_readers, protocol.drop_below_readers = 3, 1
    protocol.match_rule, protocol.match_threshold = "centre_distance", 5.0
    protocol.save()
    readers = [setup.fixture(f"reader_{name}") for name in "abc"]
    for i in range(2):
        make_case(
            setup.project,
            readers,
            f"X{i:02d}",
            patient="",
            series=_real_series(setup.project, seed=80 + i),
            finding_at=(30, 30, [2, 3]),
        )
    draft = datasets.create_draft(
        setup.project, version="1.0.0", by=setup.manager, all_adjudicated=True
    )
    version = datasets.freeze(draft, by=setup.manager)
    return queue_export(version, user=setup.manager)


def check_export(setup: Setup, job: Job) -> None:
    # Killed while the package was being written: the re-run removed the
    # half-written `.part-*` directory and wrote the package whole.
    from annotation_server.datasets.export_jobs import export_root, zip_for_job
    from export.verify import verify

    root = export_root()
    assert not list(root.rglob(".part-*")), list(root.rglob(".part-*"))
    (package,) = [p for p in root.rglob(job.result["package"]) if p.is_dir()]
    assert verify(package) == []
    assert zipfile.is_zipfile(zip_for_job(job))


# datasets.evaluate --------------------------------------------------------------------


def build_evaluate(setup: Setup) -> Job:
    from annotation_server.datasets import evaluation_jobs
    from annotation_server.datasets import services as datasets
    from tests.datasets.conftest import make_case
    from tests.datasets.test_evaluation import detection_csv

    protocol = setup.project.protocol
    protocol.auto_accept_min_readers, protocol.drop_below_readers = 3, 1
    protocol.match_rule, protocol.match_threshold = "centre_distance", 5.0
    protocol.save()
    readers = [setup.fixture(f"reader_{name}") for name in "abc"]
    for i in range(4):
        make_case(setup.project, readers, f"Y{i:02d}", patient=f"PY{i}", positive=i % 2 == 0)
    draft = datasets.create_draft(
        setup.project,
        version="1.0.0",
        by=setup.manager,
        all_adjudicated=True,
        ratios={"train": 1.0, "validation": 0.0, "test": 0.0},
    )
    version = datasets.freeze(draft, by=setup.manager)
    evaluation = evaluation_jobs.request_evaluation(
        version,
        user=setup.manager,
        data=detection_csv(version, "train"),
        product="fault case",
        split="train",
    )
    return evaluation.job


def check_evaluate(setup: Setup, job: Job) -> None:
    # Killed after scoring, before the report was stored and the row finished: the
    # re-run scores again and finishes the one evaluation once, audited once.
    from annotation_server.audit.models import AuditEvent
    from annotation_server.datasets.models import Evaluation

    (evaluation,) = Evaluation.objects.filter(project=setup.project)
    assert job.result["evaluation_id"] == evaluation.pk and evaluation.status == "succeeded"
    assert evaluation.result["figures"]["sensitivity"]["value"] == 1.0
    events = AuditEvent.objects.filter(action="dataset.evaluated", object_id=str(evaluation.pk))
    assert events.count() == 1
    with default_storage.open(evaluation.report_key, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() in evaluation.report_key


# outbox.deliver / outbox.queue_version / outbox.queue_case ----------------------------


def _archive(setup: Setup):
    """A research archive: the module's Orthanc over DICOMweb."""
    from annotation_server.outbox.models import Destination

    handle, _truth = setup.fixture("orthanc_study")
    connection = PacsConnection.objects.create(
        project=setup.project, name="Archive", base_url=handle.dicomweb_url
    )
    return Destination.objects.create(
        project=setup.project, name="Archive", kind="research", connection=connection
    )


def build_deliver(setup: Setup) -> Job:
    from annotation_server.outbox import build
    from annotation_server.outbox import services as outbox

    case = setup.fixture("settled_case")
    objects, digest = build.case_reference(case, hospital=False)
    (item,) = outbox._queue(
        _archive(setup), objects[:1], setup.manager, case=case, reference_digest=digest
    )
    return item.job


def check_deliver(setup: Setup, job: Job) -> None:
    # Killed before the item was claimed: the re-run sends it and confirms it,
    # and the archive holds one copy.
    from annotation_server.outbox.models import OutboxItem

    (item,) = OutboxItem.objects.filter(project=setup.project)
    assert job.result["status"] == item.status == "delivered", (job.result, item.last_error)
    assert item.attempts == 1
    handle, _truth = setup.fixture("orthanc_study")
    status, body = handle.request("POST", "/tools/lookup", item.sop_instance_uid.encode())
    assert status == 200 and body.count(b'"Instance"') == 1, body


def build_queue_version(setup: Setup) -> Job:
    from annotation_server.datasets import services as datasets
    from tests.datasets.conftest import make_case

    protocol = setup.project.protocol
    protocol.auto_accept_min_readers, protocol.drop_below_readers = 3, 1
    protocol.match_rule, protocol.match_threshold = "centre_distance", 5.0
    protocol.save()
    readers = [setup.fixture(f"reader_{name}") for name in "abc"]
    make_case(
        setup.project,
        readers,
        "W00",
        patient="",
        series=_real_series(setup.project, seed=90),
        finding_at=(30, 30, [2, 3]),
    )
    draft = datasets.create_draft(
        setup.project, version="1.0.0", by=setup.manager, all_adjudicated=True
    )
    version = datasets.freeze(draft, by=setup.manager)
    return jobs.enqueue(
        "outbox.queue_version",
        params={"version": version.pk, "destination": _archive(setup).pk},
        project=setup.project,
        user=setup.manager,
    )


def check_queue_version(setup: Setup, job: Job) -> None:
    # Killed before anything was built: the re-run queues the version's SEG, SR
    # and six images once each, audited once.
    from annotation_server.audit.models import AuditEvent
    from annotation_server.outbox.models import OutboxItem

    items = list(OutboxItem.objects.filter(project=setup.project))
    assert job.result["items"] == len(items) == 8, job.result
    assert len({i.sop_instance_uid for i in items}) == 8 and all(i.job_id for i in items)
    assert AuditEvent.objects.filter(action="outbox.queued").count() == 1


def build_queue_case(setup: Setup) -> Job:
    from annotation_server.outbox import services as outbox

    case = setup.fixture("settled_case")
    return outbox.send_case(case, _archive(setup), setup.manager)


def check_queue_case(setup: Setup, job: Job) -> None:
    # Killed before anything was built: the re-run builds the reference SEG and SR
    # and queues each once, each with its delivery job, audited once.
    from annotation_server.audit.models import AuditEvent
    from annotation_server.outbox.models import OutboxItem

    items = list(OutboxItem.objects.filter(project=setup.project))
    assert job.result["items"] == len(items) == 2, job.result
    assert sorted(i.carries for i in items) == ["reference_seg", "reference_sr"]
    assert all(i.job_id for i in items)
    assert AuditEvent.objects.filter(action="outbox.queued").count() == 1


# periodic.run -----------------------------------------------------------------------


def build_periodic(setup: Setup) -> Job:
    from datetime import timedelta

    from django.utils import timezone

    from annotation_server.reading.models import ReadingTask
    from annotation_server.web import periodic
    from tests import factories

    task = factories.TaskFactory(case=factories.CaseFactory(project=setup.project))
    ReadingTask.objects.filter(pk=task.pk).update(due_at=timezone.now() - timedelta(days=1))
    return periodic.enqueue("overdue_reminders")


def check_periodic(setup: Setup, job: Job) -> None:
    # Killed after counting, at its log line: the re-run counts the same read once.
    assert job.params == {"name": "overdue_reminders"}
    assert job.result["reads"] == 1 and job.result["people"] == 1


FAULT_CASES: dict[str, FaultCase] = {
    "agreement.compute": FaultCase(build_agreement, at=3, check=check_agreement),
    "imaging.import": FaultCase(build_import, at=2, check=check_import),
    "imaging.pull_pacs": FaultCase(build_pull, at=2, check=check_pull),
    "imaging.build_series_streams": FaultCase(build_streams, at=1, check=check_streams),
    "qc.check_cases": FaultCase(build_qc, at=1, check=check_qc),
    "projects.assign": FaultCase(build_assign, at=1, check=check_assign),
    "adjudication.settle": FaultCase(build_settle, at=1, check=check_settle),
    "audit.verify_chain": FaultCase(build_verify, at=1, check=check_verify),
    "audit.anchor": FaultCase(build_anchor, at=2, check=check_anchor),
    "datasets.export": FaultCase(build_export, at=4, check=check_export),
    "datasets.evaluate": FaultCase(build_evaluate, at=3, check=check_evaluate),
    "reading.prelabel": FaultCase(build_prelabel, at=3, check=check_prelabel),
    "reading.finetune": FaultCase(build_finetune, at=5, check=check_finetune),
    "periodic.run": FaultCase(build_periodic, at=1, check=check_periodic),
    "outbox.deliver": FaultCase(build_deliver, at=1, check=check_deliver),
    "outbox.queue_version": FaultCase(build_queue_version, at=1, check=check_queue_version),
    "outbox.queue_case": FaultCase(build_queue_case, at=1, check=check_queue_case),
}


def test_every_job_kind_has_a_fault_case():
    missing = sorted(set(registry.JOB_HANDLERS) - set(FAULT_CASES))
    assert not missing, f"add a worker-kill case to FAULT_CASES for: {', '.join(missing)}"


def assert_no_partial_files(media_root: Path) -> None:
    """Every stored instance hashes to its key; every stored series stream is the
    whole stream of its series."""
    for path in (media_root / "instances").rglob("*.dcm"):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem, path
    for series in Series.objects.all():
        rows, etag = series_rows_and_etag(series)
        key = stream_cache.key_for(etag)
        if default_storage.exists(key):
            with default_storage.open(key, "rb") as fh:
                assert fh.read() == b"".join(series_records(rows)), key


@pytest.fixture(scope="module")
def fault_media(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fault-media")


@pytest.fixture(scope="module")
def worker_env(request, fault_media) -> dict:
    env = {
        "REFSET_AUDIT_ANCHOR_KEY": ANCHOR_KEY,
        "REFSET_EXPORT_DIR": str(fault_media / "exports"),
        # Inference jobs on the default queue: the victim's, and then the successor's.
        "REFSET_INFERENCE_QUEUE": "",
    }
    if any("pull_pacs" in item.name or "outbox" in item.name for item in request.session.items):
        env["REFSET_PACS_ALLOWED_HOSTS"] = request.getfixturevalue("orthanc_study")[0].host
        # a write-back's follow-up deliveries retry briefly, not for minutes
        env["REFSET_OUTBOX_BACKOFF_S"] = "1"
        env["REFSET_OUTBOX_MAX_ATTEMPTS"] = "2"
    return env


@pytest.fixture(scope="module")
def successor(django_db_setup, django_db_blocker, fault_media, worker_env):
    """The worker that takes over: started once, on a queue of its own (recovered
    jobs are dispatched to the default queue of the worker that recovers them)."""
    queue = f"refset-successor-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        proc = start_worker(queue, fault_media, **worker_env)
    yield proc
    stop_worker(proc)


@pytest.fixture
def victim_queue() -> str:
    """The queue of this test's victim: its own, so nothing else reaches it."""
    return f"refset-victim-{uuid.uuid4().hex[:8]}"


def start_victim(kind: str, queue: str, media: Path, env: dict):
    """The worker that runs the job first, started for this test alone: the
    test-only delay for `kind` only, so nothing else it might run (a job it takes
    over, a follow-up job) waits. No second victim runs while a job is taken over:
    the successor is the only live worker that can re-run it."""
    return start_worker(
        queue,
        media,
        REFSET_TEST_JOB_DELAY_S="300",
        REFSET_TEST_JOB_DELAY_AT=f"{kind}={FAULT_CASES[kind].at}",
        **env,
    )


def taken_over_by(job: Job) -> str:
    """The owner token of the attempt that took `job` over, from its log."""
    for line in job.log.splitlines():
        if "stopped during attempt 1" in line:
            return line.rsplit(" on ", 1)[-1]
    return ""


@pytest.mark.timeout(900)  # each wait below allows 300 s on a loaded 2-core machine
@pytest.mark.parametrize("kind", sorted(registry.JOB_HANDLERS))
def test_a_worker_killed_mid_job_leaves_nothing_running_and_the_rerun_completes(
    kind, request, project, manager, settings, successor, victim_queue, fault_media, worker_env
):
    fault = FAULT_CASES.get(kind)
    if fault is None:
        pytest.fail(f"job kind {kind} has no worker-kill case: add it to FAULT_CASES")
    rescuer = successor
    settings.MEDIA_ROOT = str(fault_media)
    settings.REFSET_AUDIT_ANCHOR_KEY = ANCHOR_KEY
    settings.REFSET_EXPORT_DIR = worker_env["REFSET_EXPORT_DIR"]
    settings.REFSET_INFERENCE_QUEUE = ""
    app.conf.task_default_queue = victim_queue
    setup = Setup(request, project, manager)
    victim = start_victim(kind, victim_queue, fault_media, worker_env)
    try:
        job = fault.build(setup)  # on the victim's queue
        wait_for(lambda: "test delay" in job_row(job).log, "the job's delay point", 300, victim)
        assert job.state == Job.State.RUNNING and job.attempts == 1
        kill_worker(victim)
        # What it forked (an import's pool) ends with it instead of holding its
        # database session and broker connection open.
        try:
            wait_for(lambda: not survivors(victim), "the killed worker's children to end", 30)
        except AssertionError:
            pytest.fail(f"processes outlived the killed worker: {survivors(victim)}")
        assert job_row(job).state == Job.State.RUNNING  # held by a dead worker
        wait_for(lambda: job_row(job).finished_at, "the job to finish", 300, rescuer)
        assert job.state == Job.State.SUCCEEDED, (job.error, job.log)
        assert job.attempts == 2
        assert "stopped during attempt 1" in job.log, job.log
        assert f":{rescuer.pid}:" in taken_over_by(job), job.log
        fault.check(setup, job)
        assert_no_partial_files(fault_media)
        # Follow-up jobs (an import queues two) run on the successor, which took the
        # job over, and finish before the database is flushed.
        wait_for(
            lambda: not Job.objects.exclude(state__in=Job.FINISHED).exists(),
            "the follow-up jobs",
            300,
            rescuer,
        )
        elsewhere = Job.objects.filter(created_at__gt=job.created_at).exclude(
            worker__contains=f":{rescuer.pid}:"
        )
        assert not elsewhere.exists(), list(elsewhere.values_list("kind", "worker"))
    finally:
        stop_worker(victim)
        app.conf.task_default_queue = "celery"


def test_the_cases_run_on_one_xdist_worker(request):
    """`make test` (--dist loadgroup) sends the whole module to one xdist worker,
    which tags each test id with its group (tests/conftest.py, for pytest 9.2)."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("not run with --dist loadgroup")
    assert request.node.nodeid.endswith("@faults-worker-kill"), request.node.nodeid
