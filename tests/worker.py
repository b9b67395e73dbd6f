"""Waiting for a job that a real Celery worker (the `celery_worker` fixture) runs."""

from __future__ import annotations

import time

from annotation_server.jobs.models import Job


def wait_for_job(job: Job, worker, timeout: float = 90) -> Job:
    """Poll the Job row until it finishes; fail if the worker process dies, the
    job does not succeed, or it ran anywhere but a worker."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.finished_at:
            break
        assert worker.poll() is None, "the worker died"
        time.sleep(0.2)
    assert job.state == Job.State.SUCCEEDED, (job.kind, job.state, job.error, job.log)
    assert job.worker, "ran in the worker, not in-process"
    return job


def worker_with_own_disk(request, settings, monkeypatch, s3_storage, home, web_media, **env):
    """A real Celery worker on the S3 storage whose media folder, storage cache and
    temporary folder are its own under `home` (a host that shares no disk with this
    process); `env` adds variables (REFSET_EXPORT_DIR=...). This process's media
    folder is `web_media` afterwards."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    for name, value in s3_storage.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("REFSET_STORAGE_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("TMPDIR", str(home / "tmp"))
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    settings.MEDIA_ROOT = str(home / "media")  # the worker's (celery_worker passes it)
    worker = request.getfixturevalue("celery_worker")
    settings.MEDIA_ROOT = str(web_media)
    return worker


def upload_folder(client, project, folder) -> Job:
    """POST every .dcm file of `folder` to the project's import endpoint, as the
    import page does; the import job."""
    import io

    uploads = []
    for path in sorted(folder.glob("*.dcm")):
        handle = io.BytesIO(path.read_bytes())
        handle.name = path.name
        uploads.append(handle)
    response = client.post(
        f"/api/v1/projects/{project.slug}/imports/", {"files": uploads}, format="multipart"
    )
    assert response.status_code == 202, response.content
    return Job.objects.get(pk=response.json()["id"])
