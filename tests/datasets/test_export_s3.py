"""Export with no disk shared between the web process and the worker (issue 19).

Storage is S3 (the SeaweedFS server of the test session). A real Celery worker
runs with its own empty media folder, temporary folder, storage cache and export
scratch folder. A CT study is uploaded through the REST API (the worker imports
it from the bucket), read and settled, frozen, and exported from the version
page: the worker reads the instances from the bucket through its own cache,
writes and verifies the package on its own disk and stores the zip and its
verification report in the bucket; the web process streams the zip from the
bucket, and it unpacks and verifies. Nothing reaches either media folder or
the web process's export folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest

import fixtures
from annotation_server.adjudication import services as adjudication
from annotation_server.datasets import export_jobs, services
from annotation_server.imaging.models import Instance
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.quality.models import QcReport
from export.verify import verify
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse, submit_all
from tests.datasets.conftest import LABELS
from tests.worker import upload_folder, wait_for_job, worker_with_own_disk


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _quiet(worker, timeout: float = 180) -> None:
    """Wait until every queued job (an import's follow-ups, a settle) has run."""
    deadline = time.monotonic() + timeout
    while Job.objects.exclude(state__in=Job.FINISHED).exists():
        assert time.monotonic() < deadline, list(
            Job.objects.exclude(state__in=Job.FINISHED).values_list("kind", "state")
        )
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)


def _read_and_settle(case: Case, readers) -> None:
    Case.objects.filter(pk=case.pk).update(state=Case.State.READING, qc_status="pass")
    QcReport.objects.create(
        case=case, status="pass", profile={}, results=[{"rule": "slices", "status": "pass"}]
    )
    tasks = {f"r{i}": factories.TaskFactory(case=case, reader=r) for i, r in enumerate(readers)}
    for i, task in enumerate(tasks.values()):
        add_finding(task, ellipse(30 + i, 30, [2, 3]))
    submit_all(tasks, dict.fromkeys(tasks, LABELS))
    adjudication.settle_case(case.pk)
    case.refresh_from_db()
    assert case.state == Case.State.ADJUDICATED, case.state


@pytest.mark.celery
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_uploaded_study_is_exported_by_a_worker_with_its_own_disk_and_downloads_intact(
    request,
    s3_storage,
    monkeypatch,
    settings,
    project,
    protocol,
    readers,
    manager,
    session_client_for,
    tmp_path,
):
    fixtures.generate_ct(tmp_path / "ct", slices=6, seed=41, matrix=64)
    worker_home, web_home = tmp_path / "worker-host", tmp_path / "web-host"
    worker = worker_with_own_disk(
        request, settings, monkeypatch, s3_storage, worker_home, web_home / "media",
        REFSET_EXPORT_DIR=worker_home / "exports", REFSET_ROLE="worker",
    )  # fmt: skip
    settings.REFSET_EXPORT_DIR = web_home / "exports"

    # Upload -> the worker imports from the bucket.
    client = session_client_for(manager)
    upload = upload_folder(client, project, tmp_path / "ct")
    job = wait_for_job(upload, worker, timeout=180)
    assert job.result["summary"]["imported"] == 6, job.log
    _quiet(worker)
    stored = sorted(Instance.objects.values_list("file", flat=True))
    assert stored == s3_storage.keys("instances/")

    (case,) = Case.objects.filter(project=project)
    _read_and_settle(case, readers)
    draft = services.create_draft(
        project,
        version="1.0.0",
        by=manager,
        all_adjudicated=True,
        seed=3,
        ratios={"train": 1.0, "validation": 0.0, "test": 0.0},
    )
    version = services.freeze(draft, by=manager)
    _quiet(worker)

    # Export from the version page -> the worker writes, verifies and stores the zip.
    url = f"/projects/{project.slug}/versions/{version.version}/"
    response = client.post(url + "export/", {"format": "nifdc"})
    assert response.status_code == 302, response.content
    job = Job.objects.filter(kind="datasets.export").latest("pk")
    job = wait_for_job(job, worker, timeout=240)
    zip_key = job.result["zip_key"]
    assert zip_key == f"exports/{job.result['zip_sha256'][:2]}/{job.result['zip_sha256']}/" + (
        f"{project.slug}_v1.0.0.zip"
    )
    assert zip_key in s3_storage.keys("exports/")
    report = json.loads(s3_storage.get(job.result["verification_key"]))
    assert report["ok"] is True and report["problems"] == []
    assert export_jobs.verification_report(job)["zip_sha256"] == job.result["zip_sha256"]

    # The web process streams it from the bucket.
    link = f"{url}exports/{job.pk}/download/"
    page = client.get(url).content.decode()
    assert link in page and 'data-testid="export-verified"' in page
    response = client.get(link)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Content-Type"] == "application/zip"
    data = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(data) == job.result["zip_bytes"]
    assert hashlib.sha256(data).hexdigest() == job.result["zip_sha256"]
    target = tmp_path / "unzipped"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(target)
    (root,) = list(target.iterdir())
    assert verify(root) == []
    images = sorted(p for p in root.rglob("*.dcm") if "images" in p.parts)
    assert len(images) == 6
    # The images are the stored instances' bytes (de-identified at import).
    assert {hashlib.sha256(p.read_bytes()).hexdigest() for p in images} == {
        key.rsplit("/", 1)[-1].removesuffix(".dcm") for key in stored
    }

    # Nothing crossed through a local disk: the worker read the instances through
    # its own cache and wrote the package in its own scratch folder; the web
    # process has no export folder and neither has stored files in media.
    assert _files(worker_home / "media") == [] and _files(web_home / "media") == []
    assert not (web_home / "exports").exists()
    cached = {p.name for p in _files(worker_home / "cache" / "instances")}
    assert cached == {key.rsplit("/", 1)[-1] for key in stored}
    assert export_jobs.zip_for_job(job) is None  # not on this host: only in the bucket
    assert any(p.name.endswith(".zip") for p in _files(worker_home / "exports"))


def test_only_a_stored_zip_under_exports_is_offered_for_download():
    """A job from before zips were stored names only its worker's local file, and
    a result naming a key outside exports/ is refused: neither is downloadable."""
    old = Job(
        kind="datasets.export",
        state=Job.State.SUCCEEDED,
        result={"zip": "lung/shared/lung_v0.9.0.zip", "package": "lung_v0.9.0"},
    )
    assert export_jobs.stored_zip(old) is None
    for key in ("../../etc/passwd", "instances/ab/cd/x.dcm", "exports/../uploads/x"):
        assert (
            export_jobs.stored_zip(Job(kind=old.kind, state=old.state, result={"zip_key": key}))
            is None
        )
    good = Job(kind=old.kind, state=old.state, result={"zip_key": "exports/ab/abcd/lung_v1.zip"})
    assert export_jobs.stored_zip(good) == ("exports/ab/abcd/lung_v1.zip", "lung_v1.zip")
    running = Job(kind=old.kind, state=Job.State.RUNNING, result=good.result)
    assert export_jobs.stored_zip(running) is None
