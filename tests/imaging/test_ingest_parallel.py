"""Ingest in worker processes: the same files, UIDs and report as the serial path;
workers never touch the database; a dying worker or a failing import leaves
neither a lost file nor an orphan; identical bytes stored at once stay one file."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest
from django.core.files.storage import default_storage

import fixtures
from annotation_server.imaging import storage
from annotation_server.imaging.ingest import keys, parallel
from annotation_server.imaging.ingest.pipeline import Ingest
from annotation_server.imaging.ingest.sources import Limits, Rejection, from_paths
from annotation_server.imaging.models import (
    IdentityMapping,
    Instance,
    ProjectKey,
    Quarantine,
    Series,
)
from tests import factories
from tests.worker import wait_for_job


@pytest.fixture(autouse=True)
def _fork_beside_test_threads(request, monkeypatch):
    """A live server left running by an earlier test is a thread that would make
    every import here serial; it holds no lock a worker needs."""
    if "runs_other_threads" not in request.node.name:
        monkeypatch.setattr(parallel, "_other_threads", lambda: False)


def _stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT) / "instances"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _ingest(project, folder, workers: int) -> tuple[Ingest, object]:
    job = Ingest(project, source="test", workers=workers, prebuild_streams=False, run_qc=False)
    return job, job.run(from_paths([folder], Limits()))


@pytest.fixture
def ct_dir(tmp_path) -> Path:
    fixtures.generate_ct(tmp_path / "ct", slices=6, seed=3, matrix=64)
    (tmp_path / "ct" / "truth.json").unlink()
    return tmp_path / "ct"


@pytest.mark.django_db
def test_workers_store_byte_for_byte_what_the_serial_path_stores(project, tmp_path):
    """Two patients, a file twice, a zip, a quarantined image and junk, imported
    serially into one project and by workers into its twin (same secret): the same
    report, the same stored bytes, one series per original series (every worker
    derives the same UIDs), the same key-store rows."""
    delivery = tmp_path / "delivery"
    fixtures.generate_ct(delivery / "a", slices=9, seed=21, matrix=64)
    fixtures.generate_ct(delivery / "b", slices=7, seed=22, matrix=64)
    fixtures.generate_xr(delivery / "xr", seed=5, size=128, defect="burned-in-text")
    for truth in delivery.rglob("truth.json"):
        truth.unlink()
    shutil.copy(sorted((delivery / "a").glob("*.dcm"))[4], delivery / "a-again.dcm")
    with zipfile.ZipFile(delivery / "b.zip", "w") as zf:
        for f in sorted((delivery / "b").glob("*.dcm"))[:3]:
            zf.write(f, f"b/{f.name}")
    (delivery / "notes.txt").write_text("not an image")

    twin = _twin(project)
    one, many = _both_ways(project, twin, [delivery])
    s = many.summary()
    assert (s["imported"], s["duplicates"], s["quarantined"], s["rejected"]) == (16, 4, 1, 1)
    for p in (project, twin):
        assert sorted(
            Series.objects.filter(study__project=p).values_list("num_instances", flat=True)
        ) == [7, 9]

    assert len(_key_store(twin)) >= 6


@pytest.mark.django_db
def test_real_files_index_alike_serially_and_in_workers(project, monkeypatch):
    """Odd real-world files too (some headers pickle refuses: pydicom keeps a local
    function in LUT descriptor values). Only their index facts travel back, never
    the pydicom header, so every accepted file arrives with its facts."""
    from tests.real_dicom import real_dicom_files

    received = []
    real = parallel._received

    def spy(blob):
        result = real(blob)
        received.append(result)
        assert result.prepared.header is None
        assert (result.prepared.facts is None) == result.prepared.rejected
        return result

    monkeypatch.setattr(parallel, "_received", spy)
    one, many = _both_ways(project, _twin(project), real_dicom_files())
    assert many.summary()["imported"] >= 30
    candidates = [
        i for i in from_paths(real_dicom_files(), Limits()) if not isinstance(i, Rejection)
    ]
    assert len(received) == len(candidates) and any(r.prepared.rejected for r in received)


def _twin(project):
    """A project with the same de-identification secret."""
    twin = factories.ProjectFactory()
    keys.project_secret(project)
    ProjectKey.objects.create(
        project=twin, secret_encrypted=ProjectKey.objects.get(project=project).secret_encrypted
    )
    return twin


def _instances(p) -> list[tuple]:
    fields = [f.name for f in Instance._meta.fields if f.name not in ("id", "series")]
    return sorted(
        Instance.objects.filter(series__study__project=p).values_list("series__series_uid", *fields)
    )


def _key_store(p) -> list[tuple]:
    return sorted(
        IdentityMapping.objects.filter(project=p).values_list(
            "kind", "original_digest", "replacement"
        )
    )


def _both_ways(project, twin, paths):
    """Import `paths` serially into `project`, by two workers into `twin`; everything
    the database and storage hold must be alike."""
    serial = Ingest(project, source="test", workers=1, prebuild_streams=False, run_qc=False)
    one = serial.run(from_paths(paths, Limits()))
    pooled = Ingest(twin, source="test", workers=2, prebuild_streams=False, run_qc=False)
    many = pooled.run(from_paths(paths, Limits()))
    assert (serial.workers_used, pooled.workers_used) == (1, 2)

    def lines(report):
        return [(f.name, f.status, f.reason, f.series_uid, f.sop_uid) for f in report.files]

    assert lines(many) == lines(one)
    assert many.summary() == {**one.summary(), "cases": many.summary()["cases"]}
    assert _instances(twin) == _instances(project)
    assert set(Quarantine.objects.filter(project=twin).values_list("sha256", flat=True)) == set(
        Quarantine.objects.filter(project=project).values_list("sha256", flat=True)
    )
    assert _key_store(twin) == _key_store(project)
    for instance in Instance.objects.filter(series__study__project=twin):
        with default_storage.open(instance.file) as fh:
            assert hashlib.sha256(fh.read()).hexdigest() == instance.sha256
    return one, many


@pytest.mark.django_db
def test_a_worker_that_dies_costs_no_file(project, ct_dir, monkeypatch, settings):
    parent = os.getpid()
    real = parallel.prepare

    def dying(deid, name, data):
        if os.getpid() != parent and name.endswith("CT_0003.dcm"):
            os._exit(9)  # as a worker killed for memory ends
        return real(deid, name, data)

    monkeypatch.setattr(parallel, "prepare", dying)
    job, report = _ingest(project, ct_dir, workers=2)
    assert job.workers_used == 2
    assert (report.summary()["imported"], report.summary()["rejected"]) == (6, 0)
    instances = Instance.objects.filter(series__study__project=project)
    assert instances.count() == 6
    for instance in instances:  # none truncated by the worker that was stopped
        with default_storage.open(instance.file) as fh:
            data = fh.read()
        assert hashlib.sha256(data).hexdigest() == instance.sha256
        assert len(data) == instance.size_bytes
    assert len(_stored_files(settings)) == 6


@pytest.mark.django_db
def test_workers_cannot_query_the_database(project, ct_dir, monkeypatch):
    real = parallel.prepare

    def querying(deid, name, data):
        Instance.objects.count()
        return real(deid, name, data)

    monkeypatch.setattr(parallel, "prepare", querying)
    job, report = _ingest(project, ct_dir, workers=2)
    assert job.workers_used == 2
    assert report.summary()["rejected"] == 6
    assert all("do not touch the database" in f.reason for f in report.files)
    monkeypatch.setattr(parallel, "prepare", real)
    job, report = _ingest(project, ct_dir, workers=2)  # the parent's connection is intact
    assert report.summary()["imported"] == 6
    assert Instance.objects.filter(series__study__project=project).count() == 6


@pytest.mark.django_db
@pytest.mark.parametrize("workers", [1, 2])
def test_an_import_failing_halfway_removes_what_it_stored(
    project, ct_dir, monkeypatch, settings, workers
):
    calls = 0
    real = keys.MappingRecorder.add

    def failing(self, mappings):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("key store went away")
        return real(self, mappings)

    monkeypatch.setattr(keys.MappingRecorder, "add", failing)
    with pytest.raises(RuntimeError, match="key store went away"):
        _ingest(project, ct_dir, workers=workers)
    assert calls == 3
    assert not _stored_files(settings)
    assert not Instance.objects.exists()


@pytest.mark.django_db
def test_a_process_that_runs_other_threads_prepares_serially(project, ct_dir):
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        job, report = _ingest(project, ct_dir, workers=2)
    finally:
        stop.set()
        other.join()
    assert job.workers_used == 1
    assert report.summary()["imported"] == 6


def test_pool_size_follows_the_setting_and_the_batch(settings):
    settings.REFSET_INGEST_WORKERS = 3
    assert parallel.configured_workers() == 3
    settings.REFSET_INGEST_WORKERS = 0
    assert parallel.configured_workers() == parallel.cpu_count()
    assert parallel.usable_workers(4, 100)[0] == 4
    assert parallel.usable_workers(4, 5)[0] == 2  # two files a worker at least
    assert parallel.usable_workers(4, 3) == (1, "serial: few files or one worker configured")
    assert parallel.usable_workers(1, 100)[0] == 1


def test_two_writers_of_the_same_bytes_keep_one_file(settings, monkeypatch):
    """The loser of the race (it checked before the winner saved) is renamed by the
    backend: its copy is removed and it reports the file as already there."""
    data = os.urandom(4096)
    digest, key, created = storage.put(data)
    assert created
    real_exists = default_storage.exists
    checks = []

    def exists_before_the_winner_saved(name):
        checks.append(name)
        return False if len(checks) == 1 else real_exists(name)

    monkeypatch.setattr(default_storage, "exists", exists_before_the_winner_saved)
    assert storage.put(data) == (digest, key, False)
    assert checks[0] == key and checks[-1] == key  # it looked again after the rename
    assert _stored_files(settings) == [Path(settings.MEDIA_ROOT) / key]
    with default_storage.open(key) as fh:
        assert fh.read() == data


def test_a_file_truncated_by_a_killed_writer_is_replaced_when_verified(settings):
    data = os.urandom(4096)
    digest, key, _ = storage.put(data)
    (Path(settings.MEDIA_ROOT) / key).write_bytes(data[:1000])
    assert storage.put(data) == (digest, key, False)  # unverified: taken as it is
    assert storage.put(data, verify=True) == (digest, key, True)
    with default_storage.open(key) as fh:
        assert fh.read() == data


def test_writers_in_several_processes_store_identical_bytes_once(settings):
    """Forked writers storing the same bytes at the same moment, many times: one
    file each time, no renamed copies, no error."""
    import multiprocessing

    blobs = [os.urandom(64 * 1024) for _ in range(12)]
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        results = pool.map(_put_at, [(blob, time.time() + 0.5) for blob in blobs for _ in range(4)])
    for i, blob in enumerate(blobs):
        mine = results[4 * i : 4 * i + 4]
        assert all(r[0] == hashlib.sha256(blob).hexdigest() for r in mine)
        assert sum(r[2] for r in mine) == 1  # created once, found by the others
    assert len(_stored_files(settings)) == len(blobs)


def test_a_writer_killed_mid_write_leaves_nothing_at_the_key(settings):
    """The bytes are published at the content key only once complete: a writer
    killed halfway (SIGKILL: no clean-up runs) leaves no file at the key, so the
    next import stores the file instead of trusting a truncated one."""
    import signal

    data = os.urandom(200 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    key = storage.key_for(digest)
    pid = os.fork()
    if pid == 0:  # the writer: dies after writing half of the bytes
        real_fdopen = os.fdopen

        class Dying:
            def __init__(self, fh):
                self.fh = fh

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def write(self, chunk):
                self.fh.write(chunk[: len(chunk) // 2])
                self.fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        os.fdopen = lambda *a, **k: Dying(real_fdopen(*a, **k))
        try:
            storage.put(data)
        finally:
            os._exit(3)  # not reached: the kill comes first
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not default_storage.exists(key)
    assert storage.put(data) == (digest, key, True)
    with default_storage.open(key) as fh:
        assert fh.read() == data


def _put_at(args):
    blob, when = args
    time.sleep(max(0.0, when - time.time()))
    return storage.put(blob)


@pytest.fixture
def prefork_worker(transactional_db, settings):
    """A real worker with Celery's default pool (prefork: the job runs in a
    daemonic pool process), on this test's database and its own queue."""
    import subprocess
    import sys
    import uuid

    from django.db import connection

    from annotation_server.celery import app

    db = connection.settings_dict
    queue = f"refset-test-{uuid.uuid4().hex[:8]}"
    app.conf.task_default_queue = queue
    env = dict(
        os.environ,
        DATABASE_URL=f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REFSET_CELERY_QUEUE=queue,
        REFSET_MEDIA_ROOT=str(settings.MEDIA_ROOT),
    )
    command = [sys.executable, "-m", "celery", "-A", "annotation_server", "worker", "-Q", queue]
    proc = subprocess.Popen(
        [*command, "--pool", "prefork", "--concurrency", "1", "--without-gossip"]
        + ["--without-mingle", "--loglevel", "WARNING"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    app.conf.task_default_queue = "celery"


@pytest.mark.celery
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_the_import_job_prepares_in_worker_processes(
    request, pool, project, manager, client_for, ct_dir
):
    from annotation_server.jobs.models import Job

    worker = request.getfixturevalue("celery_worker" if pool == "solo" else "prefork_worker")

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(ct_dir.glob("*.dcm")):
            zf.write(f, f"ct/{f.name}")
    archive.seek(0)
    archive.name = "ct.zip"
    response = client_for(manager).post(
        f"/api/v1/projects/{project.slug}/imports/", {"files": [archive]}, format="multipart"
    )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    wait_for_job(job, worker, timeout=120)
    assert job.result["summary"]["imported"] == 6
    workers = min(parallel.cpu_count(), 6 // parallel.MIN_FILES_PER_WORKER)  # the default
    assert f"prepared in {workers} process" in job.log, job.log
