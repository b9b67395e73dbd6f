"""A Celery worker killed (SIGKILL) in the middle of a job, for every job kind in
annotation_server/registry.py: the Job row never stays "running" -- another
worker takes it over once the dead one's lease has run out and finishes it --,
the re-run completes without doubling anything, and no stored file under its
final key is partial.

Each kind gets a real job with valid parameters; the worker that runs it first
(the victim, started per test on a queue of its own) has the test-only delay
(REFSET_TEST_JOB_DELAY_S / _AT, jobs.services): at a known progress/log call it
logs "test delay" and sleeps, and is killed there. The successor (one per
module, started once, consuming another queue) finds the dead worker's job by
its expired lease (jobs.services.recover_stale) and runs it again. A kind
without a case here fails `test_every_job_kind_has_a_fault_case`.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
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
from tests.faults.workers import job_row, kill_worker, start_worker, stop_worker, wait_for
from tests.orthanc import run_orthanc

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


FAULT_CASES: dict[str, FaultCase] = {
    "imaging.import": FaultCase(build_import, at=2, check=check_import),
    "imaging.pull_pacs": FaultCase(build_pull, at=2, check=check_pull),
    "imaging.build_series_streams": FaultCase(build_streams, at=1, check=check_streams),
    "qc.check_cases": FaultCase(build_qc, at=1, check=check_qc),
    "projects.assign": FaultCase(build_assign, at=1, check=check_assign),
    "adjudication.settle": FaultCase(build_settle, at=1, check=check_settle),
    "audit.verify_chain": FaultCase(build_verify, at=1, check=check_verify),
    "audit.anchor": FaultCase(build_anchor, at=2, check=check_anchor),
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
def worker_env(request) -> dict:
    env = {"REFSET_AUDIT_ANCHOR_KEY": ANCHOR_KEY}
    if any("pull_pacs" in item.name for item in request.session.items):
        env["REFSET_PACS_ALLOWED_HOSTS"] = request.getfixturevalue("orthanc_study")[0].host
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


class Victims:
    """Workers with the test-only delay, on the module's victim queue; the next
    one starts while the current test's job is re-run elsewhere."""

    def __init__(self, media: Path, env: dict):
        self.queue = f"refset-victim-{uuid.uuid4().hex[:8]}"
        self.media, self.env = media, env
        self.next = None

    def start(self):
        return start_worker(
            self.queue,
            self.media,
            REFSET_TEST_JOB_DELAY_S="300",
            REFSET_TEST_JOB_DELAY_AT=",".join(f"{k}={f.at}" for k, f in FAULT_CASES.items()),
            **self.env,
        )

    def take(self):
        proc, self.next = self.next or self.start(), None
        return proc

    def prestart(self) -> None:
        self.next = self.start()


@pytest.fixture(scope="module")
def victims(django_db_setup, django_db_blocker, fault_media, worker_env):
    pool = Victims(fault_media, worker_env)
    yield pool
    if pool.next is not None:
        stop_worker(pool.next)


@pytest.mark.timeout(900)  # each wait below allows 300 s on a loaded 2-core machine
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            kind,
            marks=pytest.mark.xfail(
                reason="in the full suite an import's follow-up jobs, queued before the kill, "
                "can wait behind the next prestarted victim's test delay (open: a drainer "
                "worker between tests); passes run alone",
                strict=False,
            ),
        )
        if kind in ("imaging.pull_pacs", "imaging.import")
        else kind
        for kind in sorted(registry.JOB_HANDLERS)
    ],
)
def test_a_worker_killed_mid_job_leaves_nothing_running_and_the_rerun_completes(
    kind, request, project, manager, settings, successor, victims, fault_media
):
    fault = FAULT_CASES.get(kind)
    if fault is None:
        pytest.fail(f"job kind {kind} has no worker-kill case: add it to FAULT_CASES")
    rescuer = successor
    settings.MEDIA_ROOT = str(fault_media)
    settings.REFSET_AUDIT_ANCHOR_KEY = ANCHOR_KEY
    app.conf.task_default_queue = victims.queue
    setup = Setup(request, project, manager)
    victim = None
    try:
        job = fault.build(setup)  # queued in Redis until the victim starts
        victim = victims.take()
        wait_for(lambda: "test delay" in job_row(job).log, "the job's delay point", 300, victim)
        assert job.state == Job.State.RUNNING and job.attempts == 1
        kill_worker(victim)
        victims.prestart()  # for the next test, while this job is taken over
        assert job_row(job).state == Job.State.RUNNING  # held by a dead worker
        wait_for(lambda: job_row(job).finished_at, "the job to finish", 300, rescuer)
        assert job.state == Job.State.SUCCEEDED, (job.error, job.log)
        assert job.attempts == 2
        assert "stopped during attempt 1" in job.log, job.log
        fault.check(setup, job)
        assert_no_partial_files(fault_media)
        # Follow-up jobs (an import queues two) finish before the database is flushed.
        wait_for(
            lambda: not Job.objects.exclude(state__in=Job.FINISHED).exists(),
            "the follow-up jobs",
            300,
            rescuer,
        )
    finally:
        if victim is not None:
            stop_worker(victim)
        app.conf.task_default_queue = "celery"
