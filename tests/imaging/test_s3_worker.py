"""A real Celery worker that shares no disk with the web process: both use the
S3 storage (SeaweedFS), each with its own media folder and cache. The upload
goes to the bucket, the worker imports it from there (in its pool of ingest
processes) and builds the series stream, and the web process serves the
stream from the bucket."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import fixtures
from annotation_server.imaging import pixels
from annotation_server.imaging.models import Instance, Series
from annotation_server.jobs.models import Job
from tests.worker import upload_folder, wait_for_job, worker_with_own_disk


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.celery
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_with_its_own_disk_imports_the_upload_from_s3_and_the_web_serves_it(
    request, s3_storage, monkeypatch, settings, project, manager, session_client_for, tmp_path
):
    fixtures.generate_ct(tmp_path / "ct", slices=4, seed=35, matrix=64)
    worker_home = tmp_path / "worker-host"
    worker = worker_with_own_disk(
        request, settings, monkeypatch, s3_storage, worker_home, tmp_path / "web-host" / "media"
    )
    client = session_client_for(manager)
    upload = upload_folder(client, project, tmp_path / "ct")
    job = wait_for_job(upload, worker, timeout=120)
    assert job.result["summary"]["imported"] == 4, job.log
    assert s3_storage.keys("uploads/") == []
    instances = Instance.objects.filter(series__study__project=project)
    assert sorted(i.file for i in instances) == s3_storage.keys("instances/")

    deadline = time.monotonic() + 60
    while not Job.objects.filter(kind="imaging.build_series_streams").exists():
        assert time.monotonic() < deadline, "no stream pre-build job queued"
        time.sleep(0.2)
    wait_for_job(Job.objects.get(kind="imaging.build_series_streams"), worker, timeout=90)
    [stream_key] = s3_storage.keys("derived/series-streams/")  # built by the worker

    series = Series.objects.get(study__project=project)
    served = client.get(f"/api/v1/series/{series.pk}/pixels/")
    assert served.status_code == 200 and served["X-Refset-Stream"] == "stored"
    body = b"".join(served.streaming_content)
    assert body == s3_storage.get(stream_key)
    assert len(list(pixels.iter_records(body))) == 4
    # Nothing went through a local disk: neither media folder holds a file; the
    # web process's cache holds the stream it served, the worker's only its reads.
    assert _files(worker_home / "media") == [] and _files(tmp_path / "web-host" / "media") == []
    assert (s3_storage.cache_dir / stream_key).read_bytes() == body
    assert not (worker_home / "cache" / stream_key).exists()
