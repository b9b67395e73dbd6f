"""Ingest limits on every way in: the file limit holds for zips too, the ratio guard
checks a member of exactly 1 MiB, one import stops taking bytes past
REFSET_IMPORT_MAX_TOTAL_MB, and uploads are read one at a time, never all held in
memory. Each refusal names its limit, and the rest of the import goes on."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import translation

import fixtures
from annotation_server.imaging.ingest.pipeline import default_limits, ingest
from annotation_server.imaging.ingest.sources import MB, Limits, from_paths
from annotation_server.imaging.ingest.uploads import queue_import
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _serial(settings):
    """Files prepared in this process, so tracemalloc sees every byte read; reasons
    in English (they are translated)."""
    settings.REFSET_INGEST_WORKERS = 1
    with translation.override("en"):
        yield


@pytest.fixture
def ct_dir(tmp_path) -> Path:
    fixtures.generate_ct(tmp_path / "ct", slices=6, seed=31, matrix=64)
    (tmp_path / "ct" / "truth.json").unlink()
    return tmp_path / "ct"


def _import_paths(project, *paths, limits=None):
    return ingest(project, from_paths(paths, limits or default_limits()), source="test")


def _upload(project, manager, files: list[tuple[str, bytes]]) -> dict:
    """Store the files as the import API does, then run the import job here."""
    uploads = [SimpleUploadedFile(name, data) for name, data in files]
    job = queue_import(project, uploads, user=manager)
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED, Job.objects.get(pk=job.pk).error
    return Job.objects.get(pk=job.pk).result


def _reasons(result: dict) -> dict[str, str]:
    return {f["name"]: f["reason"] for f in result["files"] if f["status"] == "rejected"}


def _bomb(path: Path, members: int, size: int = MB) -> Path:
    """A zip of `members` members of `size` zero bytes: tiny compressed. Written by
    hand with one deflate stream reused for every member (zipfile would compress
    2 GB of zeros once per member)."""
    zeros = b"\0" * size
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = packer.compress(zeros) + packer.flush()
    crc = zlib.crc32(zeros)
    entries, offset = [], 0
    with open(path, "wb") as out:
        for i in range(members):
            name = f"bomb/{i:05d}.dcm".encode()
            fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(data), size)
            local = b"PK\x03\x04" + fields + struct.pack("<HH", len(name), 0) + name
            out.write(local + data)
            entries.append((name, fields, offset))
            offset += len(local) + len(data)
        directory = b"".join(
            b"PK\x01\x02"
            + struct.pack("<H", 20)
            + fields
            + struct.pack("<HHHHHII", len(name), 0, 0, 0, 0, 0, at)
            + name
            for name, fields, at in entries
        )
        out.write(directory)
        end = struct.pack("<HHHHIIH", 0, 0, members, members, len(directory), offset, 0)
        out.write(b"PK\x05\x06" + end)
    return path


def test_a_zip_over_the_file_limit_is_refused_by_its_size(project, ct_dir, tmp_path, settings):
    """Zips skipped the file-size check and were opened whatever their size."""
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for f in sorted(ct_dir.glob("*.dcm"))[:4]:
            zf.write(f, f"ct/{f.name}")
    loose = tmp_path / "loose"
    loose.mkdir()
    for f in sorted(ct_dir.glob("*.dcm"))[4:]:
        f.rename(loose / f.name)
    largest = max(f.stat().st_size for f in loose.iterdir())
    assert archive.stat().st_size > 2 * largest
    limits = Limits(max_file_bytes=2 * largest)  # every slice fits, the zip does not
    report = _import_paths(project, loose, archive, limits=limits)
    rejected = [f for f in report.files if f.status == "rejected"]
    assert [f.name for f in rejected] == [str(archive)]
    assert "file limit (REFSET_MAX_FILE_MB)" in rejected[0].reason
    assert report.summary()["imported"] == 2  # the rest of the import goes on


def test_an_upload_named_zip_is_held_to_the_file_limit(project, manager, ct_dir, settings):
    """A file named .zip skipped the size limit and was read whole into memory."""
    settings.REFSET_MAX_FILE_MB = 1
    files = [(f.name, f.read_bytes()) for f in sorted(ct_dir.glob("*.dcm"))]
    files += [("scan.zip", b"x" * (3 * MB)), ("real.zip", _bomb_bytes(ct_dir, 3 * MB))]
    result = _upload(project, manager, files)
    reasons = _reasons(result)
    assert set(reasons) == {"scan.zip", "real.zip"}, reasons
    assert reasons["scan.zip"] == "3 MB exceeds the 1 MB file limit (REFSET_MAX_FILE_MB)"
    assert "REFSET_MAX_FILE_MB" in reasons["real.zip"]
    assert result["summary"]["imported"] == 6


def _bomb_bytes(ct_dir: Path, size: int) -> bytes:
    """A real zip of `size` bytes or more (stored, not compressed)."""
    path = ct_dir.parent / "stored.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("noise.bin", b"y" * size)
    return path.read_bytes()


def test_a_zip_member_of_exactly_1_mib_is_held_to_the_ratio_guard(project, ct_dir, tmp_path):
    """Members of exactly 1 MiB skipped the ratio guard (`> 1 MiB`)."""
    archive = tmp_path / "delivery.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(ct_dir.glob("*.dcm")):
            zf.write(f, f"ct/{f.name}")
        zf.writestr("exactly.dcm", b"\0" * MB)
        zf.writestr("just-under.dcm", b"\0" * (MB - 1))  # bounded by the totals instead
    report = _import_paths(project, archive, limits=Limits())
    reasons = {f.name.split("!/")[-1]: f.reason for f in report.files if f.status == "rejected"}
    assert "exceeds 200:1 (REFSET_ZIP_MAX_RATIO, zip bomb guard)" in reasons["exactly.dcm"]
    assert "REFSET_ZIP_MAX_RATIO" not in reasons["just-under.dcm"]
    assert report.summary()["imported"] == 6


def test_the_import_limit_counts_plain_files_across_the_import(project, ct_dir):
    slices = sorted(ct_dir.glob("*.dcm"))
    three = sum(f.stat().st_size for f in slices[:3])
    report = _import_paths(project, ct_dir, limits=Limits(import_max_total_bytes=three))
    assert report.summary()["imported"] == 3
    rejected = [f for f in report.files if f.status == "rejected"]
    assert [Path(f.name).name for f in rejected] == [f.name for f in slices[3:]]
    assert all("(REFSET_IMPORT_MAX_TOTAL_MB)" in f.reason for f in rejected)


def test_a_zip_of_2000_members_of_1_mib_stops_at_the_import_limit(
    project, manager, ct_dir, tmp_path, settings
):
    """2,000 members of exactly 1 MiB of zeros (2 GB expanded, about 2 MB stored), with
    the ratio guard off: the import stops expanding at REFSET_IMPORT_MAX_TOTAL_MB,
    says so, imports the files before it, and holds one member at a time."""
    settings.REFSET_ZIP_MAX_RATIO = 1_000_000  # the import limit alone must stop it
    settings.REFSET_IMPORT_MAX_TOTAL_MB = 8
    bomb = _bomb(tmp_path / "bomb.zip", 2000).read_bytes()
    assert len(bomb) < 4 * MB
    files = [(f.name, f.read_bytes()) for f in sorted(ct_dir.glob("*.dcm"))]
    files.append(("bomb.zip", bomb))
    del bomb
    tracemalloc.start()
    started = time.monotonic()
    try:
        tracemalloc.reset_peak()
        result = _upload(project, manager, files)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    elapsed = time.monotonic() - started
    assert result["summary"]["imported"] == 6
    members = [f for f in result["files"] if f["name"].startswith("bomb.zip!/")]
    expanded = [f for f in members if "REFSET_IMPORT_MAX_TOTAL_MB" not in f["reason"]]
    (stopped,) = [f for f in members if "REFSET_IMPORT_MAX_TOTAL_MB" in f["reason"]]
    assert len(expanded) == 7  # 8 MB less the six slices before it
    assert stopped["reason"] == (
        "import total over 8 MB (REFSET_IMPORT_MAX_TOTAL_MB); the rest of the archive skipped"
    )
    assert len(result["files"]) == 6 + 7 + 1
    print(f"2000 x 1 MiB zip bomb: peak traced memory {peak / MB:.1f} MiB, {elapsed:.1f} s")
    assert peak < 16 * MB, f"peak {peak / MB:.1f} MiB"


def test_uploads_are_read_one_at_a_time_not_held_in_memory(project, manager, ct_dir):
    """Every uploaded file was read into memory before the first was prepared."""
    files = [(f"junk-{i:02d}.bin", bytes([i]) * MB) for i in range(24)]
    files += [(f.name, f.read_bytes()) for f in sorted(ct_dir.glob("*.dcm"))]
    tracemalloc.start()
    try:
        uploads = [SimpleUploadedFile(name, data) for name, data in files]
        del files
        job = queue_import(project, uploads, user=manager)
        del uploads
        tracemalloc.reset_peak()
        assert jobs.execute(job.pk) == Job.State.SUCCEEDED
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    result = Job.objects.get(pk=job.pk).result
    assert result["summary"]["imported"] == 6 and result["summary"]["rejected"] == 24
    print(f"24 x 1 MiB uploads: peak traced memory while importing {peak / MB:.1f} MiB")
    assert peak < 8 * MB, f"peak {peak / MB:.1f} MiB for 24 MiB of uploads"
