"""A full disk during an import: the storage is a 2 MB tmpfs. The import job
finishes (never stays running), its report names every file that did not fit
and why, every file under a final key is whole (instances hash to their key),
and the series stream that cannot be stored leaves nothing that a later fetch
would serve as the series."""

from __future__ import annotations

import hashlib
import io
import subprocess
import zipfile
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

import fixtures
from annotation_server.imaging import stream_cache
from annotation_server.imaging.delivery import series_records, series_rows_and_etag
from annotation_server.imaging.ingest.uploads import queue_import
from annotation_server.imaging.models import Series
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from fixtures.dicom_common import dataset_bytes

pytestmark = pytest.mark.django_db

SLICES = 40  # 256 x 256 int16: about 130 KB each stored, 5 MB in all


@pytest.fixture
def tiny_media(settings, tmp_path):
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): run the tests as root")
    settings.MEDIA_ROOT = str(folder)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _zip_of_ct() -> bytes:
    datasets, _ = fixtures.build_ct_datasets(slices=SLICES, seed=71, matrix=256, noise_hu=0)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i, ds in enumerate(datasets):
            zf.writestr(f"CT/{i:04d}.dcm", dataset_bytes(ds))
    return out.getvalue()


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_an_import_that_does_not_fit_fails_cleanly_and_leaves_nothing_partial(
    tiny_media, project, manager
):
    data = _zip_of_ct()
    assert len(data) < 1_000_000, "the upload itself must fit"
    job = queue_import(
        project, [SimpleUploadedFile("ct.zip", data, "application/zip")], user=manager
    )
    assert jobs.execute(job.pk) in Job.FINISHED
    job.refresh_from_db()
    assert job.finished_at and job.state != Job.State.RUNNING
    files = job.result["files"]
    refused = [f for f in files if f["status"] == "rejected"]
    assert refused, job.result["summary"]
    for f in refused:
        assert f["name"].startswith("ct.zip") or f["name"].startswith("CT/"), f
        assert "No space left on device" in f["reason"], f
    stored = [p for p in _files(tiny_media) if p.suffix == ".dcm"]
    assert stored, "some slices fitted"
    for path in stored:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem, path
    assert not [p for p in _files(tiny_media) if ".part-" in p.name], "temporary files removed"

    # The follow-up job builds the series stream: it cannot fit either.
    for series in Series.objects.filter(study__project=project):
        follow_up = Job.objects.create(
            kind="imaging.build_series_streams", params={"series_ids": [series.pk]}
        )
        assert jobs.execute(follow_up.pk) in Job.FINISHED
        rows, etag = series_rows_and_etag(series)
        key = stream_cache.key_for(etag)
        if default_storage.exists(key):  # only ever the whole stream
            with default_storage.open(key, "rb") as fh:
                assert fh.read() == b"".join(series_records(rows)), "a partial stream is stored"
    assert not [p for p in _files(tiny_media) if ".part-" in p.name]
