"""The storage paths on S3 (SeaweedFS on loopback, through django-storages): ingest
serial and in worker processes, content-addressed dedup, uploads and their zips,
the pixel API with the node's local cache (only a cache), thumbnails, STOW-RS and
/healthz. Nothing may land on the local disk but the cache."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.test import Client

import fixtures
from annotation_server.imaging import pixels, storage, stream_cache
from annotation_server.imaging.ingest import parallel
from annotation_server.imaging.ingest.pipeline import Ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import Instance, Series
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fork_beside_test_threads(monkeypatch):
    """A live server left running by an earlier test is a thread that would make
    every import here serial; it holds no lock a worker needs."""
    monkeypatch.setattr(parallel, "_other_threads", lambda: False)


@pytest.fixture
def ct_dir(tmp_path) -> Path:
    fixtures.generate_ct(tmp_path / "ct", slices=6, seed=31, matrix=64)
    (tmp_path / "ct" / "truth.json").unlink()
    return tmp_path / "ct"


def _ingest(project, folder, workers: int):
    job = Ingest(project, source="test", workers=workers, prebuild_streams=False, run_qc=False)
    return job, job.run(from_paths([folder], Limits()))


def _local_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _assert_instances_in_bucket(s3, project) -> list[Instance]:
    instances = list(Instance.objects.filter(series__study__project=project))
    keys = set(s3.keys("instances/"))
    for instance in instances:
        assert instance.file in keys
        assert hashlib.sha256(s3.get(instance.file)).hexdigest() == instance.sha256
    return instances


def test_the_default_storage_is_s3_on_seaweedfs(s3_storage):
    from storages.backends.s3 import S3Storage

    assert isinstance(storage._wrapped(), S3Storage)
    assert storage.is_s3() and storage.is_remote() and not storage.is_local()
    assert f"s3://{s3_storage.bucket}/{s3_storage.prefix}" in storage.describe()
    assert s3_storage.endpoint_url in storage.describe()
    assert s3_storage.secret_key not in storage.describe()


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "pool"])
def test_a_ct_series_is_imported_into_the_bucket_and_a_reimport_adds_no_object(
    s3_storage, project, ct_dir, settings, workers
):
    job, report = _ingest(project, ct_dir, workers)
    assert job.workers_used == workers
    assert (report.summary()["imported"], report.summary()["rejected"]) == (6, 0)
    instances = _assert_instances_in_bucket(s3_storage, project)
    assert len(instances) == 6 and len({i.file for i in instances}) == 6
    objects = s3_storage.keys()
    assert len(objects) == 6  # the instances, nothing else
    assert not _local_files(settings)  # nothing on this machine's disk

    again_job, again = _ingest(project, ct_dir, workers)
    assert again_job.workers_used == workers
    assert again.summary()["duplicates"] == 6 and again.summary()["imported"] == 0
    assert s3_storage.keys() == objects  # content-addressed: no new object
    assert Instance.objects.filter(series__study__project=project).count() == 6


def test_serial_and_pool_ingest_store_the_same_objects(s3_storage, project, ct_dir):
    from annotation_server.imaging.ingest import keys
    from annotation_server.imaging.models import ProjectKey

    twin = factories.ProjectFactory()
    keys.project_secret(project)
    ProjectKey.objects.create(
        project=twin, secret_encrypted=ProjectKey.objects.get(project=project).secret_encrypted
    )
    _ingest(project, ct_dir, 1)
    serial = s3_storage.keys()
    job, report = _ingest(twin, ct_dir, 2)
    assert job.workers_used == 2 and report.summary()["imported"] == 6  # new to the twin
    assert s3_storage.keys() == serial  # the same bytes, byte for byte: the same keys


def test_content_addressed_put_creates_once_and_refuses_a_second_writer(s3_storage):
    data = b"DICM" * 1000
    digest, key, created = storage.put(data)
    assert created and key == storage.key_for(hashlib.sha256(data).hexdigest()) and digest
    assert storage.put(data) == (digest, key, False)
    # Two writers that both found the key missing: the conditional PutObject lets
    # exactly one of them create it; the other is told so and stores nothing.
    assert storage._publish(key, io.BytesIO(data), ()) is False
    assert s3_storage.keys() == [key] and s3_storage.get(key) == data
    # A stream (save_whole) too, and a second save leaves the first one's bytes.
    assert storage.save_whole("derived/x/one.bin", io.BytesIO(b"first")) is True
    assert storage.save_whole("derived/x/one.bin", io.BytesIO(b"other")) is False
    assert s3_storage.get("derived/x/one.bin") == b"first"


def test_uploads_and_their_zip_are_imported_from_the_bucket(
    s3_storage, project, manager, session_client_for, ct_dir, settings
):
    """The browser's upload is stored in S3, the import job reads it from there
    (the zip through a private scratch copy) and removes the uploads."""
    files = sorted(ct_dir.glob("*.dcm"))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for f in files[3:]:
            zf.write(f, f"ct/{f.name}")
    archive.seek(0)
    archive.name = "rest.zip"
    plain = []
    for f in files[:3]:
        handle = io.BytesIO(f.read_bytes())
        handle.name = f.name
        plain.append(handle)
    client = session_client_for(manager)
    response = client.post(
        f"/api/v1/projects/{project.slug}/imports/",
        {"files": [*plain, archive]},
        format="multipart",
    )
    assert response.status_code == 202, response.content
    uploaded = s3_storage.keys("uploads/")
    assert len(uploaded) == 5  # four files and their names
    settings.REFSET_INGEST_WORKERS = 2
    assert jobs.execute(response.json()["id"]) == Job.State.SUCCEEDED
    job = Job.objects.get(pk=response.json()["id"])
    assert job.result["summary"]["imported"] == 6, job.log
    assert "prepared in 2 processes" in job.log
    assert s3_storage.keys("uploads/") == []  # deleted once imported
    _assert_instances_in_bucket(s3_storage, project)
    assert not _local_files(settings)


def _expected_values(data: bytes) -> np.ndarray:
    """What pydicom says the stored file's pixels are, after the modality rescale."""
    ds = pydicom.dcmread(io.BytesIO(data))
    return pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)


def test_pixels_are_served_from_the_bucket_and_the_cache_is_only_a_cache(
    s3_storage, project, manager, session_client_for, ct_dir, settings
):
    _ingest(project, ct_dir, 1)
    series = Series.objects.get(study__project=project)
    instances = {i.pk: i for i in Instance.objects.filter(series=series)}
    client = session_client_for(manager)  # a real session login
    url = f"/api/v1/series/{series.pk}/pixels/"

    def fetch(expected_source: str) -> bytes:
        response = client.get(url)
        assert response.status_code == 200
        assert response["X-Refset-Stream"] == expected_source
        body = b"".join(response.streaming_content)
        records = list(pixels.iter_records(body))
        assert len(records) == 6
        for header, values in records:
            instance = instances[header["instance"]]
            expected = _expected_values(s3_storage.get(instance.file))
            assert values.shape == expected.shape
            assert np.array_equal(values.astype(np.float64), expected.astype(np.float64))
        return body

    built = fetch("built")
    streams = s3_storage.keys("derived/series-streams/")
    assert len(streams) == 1 and s3_storage.get(streams[0]) == built  # stored in the bucket
    cache = s3_storage.cache_dir
    assert not (cache / streams[0]).exists()  # built here, published to the bucket only
    assert fetch("stored") == built
    assert (cache / streams[0]).read_bytes() == built  # served from this node's cache

    shutil.rmtree(cache)  # the cache lost: nothing is
    assert fetch("stored") == built  # fetched again from the bucket, not rebuilt
    assert (cache / streams[0]).read_bytes() == built
    assert s3_storage.keys("derived/series-streams/") == streams

    shutil.rmtree(cache)
    one = next(iter(instances.values()))
    response = client.get(f"/api/v1/instances/{one.pk}/pixels/")
    assert response.status_code == 200
    [(header, values)] = list(pixels.iter_records(response.content))
    assert np.array_equal(
        values.astype(np.float64), _expected_values(s3_storage.get(one.file)).astype(np.float64)
    )
    assert (cache / one.file).read_bytes() == s3_storage.get(one.file)
    assert not _local_files(settings)


def test_a_cached_copy_is_never_partial_and_a_missing_key_is_not_found(s3_storage):
    _digest, key, _ = storage.put(b"x" * 5000)
    with storage.open_cached(key) as fh:
        assert fh.read() == b"x" * 5000
    leftovers = [p for p in s3_storage.cache_dir.rglob("*") if ".part-" in p.name]
    assert not leftovers
    with pytest.raises(FileNotFoundError):
        storage.open_cached(storage.key_for("0" * 64))
    assert not list(s3_storage.cache_dir.rglob("*.dcm.part-*"))
    assert stream_cache.open_stored(stream_cache.key_for('"nothing"')) is None


def test_a_large_file_goes_up_in_parts_and_a_path_is_a_cached_copy(s3_storage, monkeypatch):
    """Past MULTIPART_FROM a file is a multipart upload (one PutObject stops at
    5 GB); code that needs a path (the export's zip writer) gets this node's copy."""
    monkeypatch.setattr(storage, "MULTIPART_FROM", 1 << 20)
    data = os.urandom(9 << 20)  # past the transfer's 8 MB multipart threshold too
    _digest, key, created = storage.put(data)
    assert created and s3_storage.get(key) == data
    head = s3_storage.client().head_object(
        Bucket=s3_storage.bucket, Key=f"{s3_storage.prefix}/{key}"
    )
    assert head["ETag"].strip('"').endswith("-2")  # assembled from two parts
    path = storage.local_path(key)
    assert path.is_relative_to(s3_storage.cache_dir) and path.read_bytes() == data
    with pytest.raises(ValueError):
        storage.local_path("uploads/x/000001")


def test_the_local_cache_keeps_to_its_size(tmp_path):
    cache = storage.LocalCache(tmp_path / "cache", limit=10_000)
    for i in range(5):
        path = cache.path(f"instances/aa/bb/{i}.dcm")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 3000)
        os.utime(path, (1000 + i, 1000 + i))  # 0 is the least recently used
    stale = cache.path("instances/aa/bb/.9.dcm.part-1-abcd")
    stale.write_bytes(b"x" * 10)
    os.utime(stale, (1, 1))  # a fetch killed mid-copy long ago
    removed = cache.trim()
    left = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert left == ["3.dcm", "4.dcm"]  # down to 80% of the limit, oldest first
    assert removed == 3 * 3000 + 10
    with pytest.raises(ValueError):
        cache.path("../outside")


def test_a_thumbnail_is_stored_in_the_bucket_once(
    s3_storage, project, manager, session_client_for, ct_dir
):
    from annotation_server.imaging.study_series import middle_instance, thumbnail

    _ingest(project, ct_dir, 1)
    series = Series.objects.get(study__project=project)
    first = thumbnail(middle_instance(series), 64)
    assert not first.stored and first.png.startswith(b"\x89PNG")
    stored = s3_storage.keys("derived/thumbnails/")
    assert len(stored) == 1 and s3_storage.get(stored[0]) == first.png
    shutil.rmtree(s3_storage.cache_dir, ignore_errors=True)
    again = thumbnail(middle_instance(series), 64)
    assert again.stored and again.png == first.png


def test_stow_rs_stores_the_instance_in_the_bucket(
    s3_storage, project, manager, settings, tmp_path
):
    datasets, _ = fixtures.build_ct_datasets(slices=2, seed=33, matrix=64)
    boundary = "refset-s3-test"
    body = b""
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        body += (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + buffer.getvalue()
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    client = Client()
    assert client.login(username=manager.username, password=factories.PASSWORD)
    response = client.post(
        f"/dicomweb/projects/{project.slug}/studies",
        data=body,
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
        HTTP_ACCEPT="application/dicom+json",
    )
    assert response.status_code == 200, response.content
    stored = response.json()["00081199"]["Value"]
    assert len(stored) == 2
    instances = _assert_instances_in_bucket(s3_storage, project)
    assert {i.sop_instance_uid for i in instances} == {
        item["00081155"]["Value"][0] for item in stored
    }
    assert not _local_files(settings)


def test_healthz_reports_the_s3_storage(s3_storage):
    response = Client().get("/healthz")
    body = response.json()
    check = body["checks"]["storage"]
    assert check["ok"] is True, check
    assert check["detail"].startswith("S3Storage s3://")
    assert s3_storage.bucket in check["detail"] and s3_storage.endpoint_url in check["detail"]
    assert s3_storage.keys("healthz/") == []  # its probe removed


def test_healthz_says_when_the_s3_storage_is_unreachable(s3_storage, settings):
    from botocore.config import Config
    from django.core.files.storage import storages
    from django.utils.functional import empty

    default = settings.STORAGES["default"]
    options = {
        **default["OPTIONS"],
        "endpoint_url": "http://127.0.0.1:9",  # nothing listens there
        "client_config": Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}),
    }
    settings.STORAGES = {**settings.STORAGES, "default": {**default, "OPTIONS": options}}
    storages._storages = {}
    default_storage._wrapped = empty
    response = Client().get("/healthz")
    assert response.status_code == 503
    check = response.json()["checks"]["storage"]
    assert check["ok"] is False and "127.0.0.1:9" in check["detail"]


def test_a_stored_path_fetches_the_instance_only_when_opened(s3_storage, ct_dir):
    """What the export gets for an instance on S3 (package_input): a path-like that
    pydicom and `open` use as a path; the bytes come into this node's cache when
    it is opened, not when it is made."""
    data = sorted(ct_dir.glob("*.dcm"))[0].read_bytes()
    digest, key, _created = storage.put(data)
    path = storage.readable_path(key)
    assert isinstance(path, storage.StoredPath) and path == storage.StoredPath(key)
    assert len({path, storage.StoredPath(key)}) == 1  # a cache key, as a str path is
    assert not (s3_storage.cache_dir / key).exists()
    assert pydicom.dcmread(path).SOPInstanceUID
    assert (s3_storage.cache_dir / key).read_bytes() == data
    with open(path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == digest
    missing = storage.readable_path(storage.key_for("0" * 64))
    with pytest.raises(FileNotFoundError), open(missing, "rb"):
        pass


def test_a_stored_file_is_streamed_from_the_bucket_with_its_size(s3_storage):
    default_storage.save("exports/ab/abcd/pkg.zip", io.BytesIO(b"PK" + bytes(300_000)))
    body, size = storage.open_stream("exports/ab/abcd/pkg.zip")
    try:
        assert size == 300_002 and not hasattr(body, "name")  # not spooled to a local file
        assert body.read(2) == b"PK" and len(body.read()) == 300_000
    finally:
        body.close()
    with pytest.raises(FileNotFoundError):
        storage.open_stream("exports/ab/abcd/none.zip")
