"""Where files come from: paths (files, folders, zips, recursively) and uploads.

Every candidate is yielded with a display name; archives are opened with the
zip-bomb and path-traversal guards, and what fails a guard is yielded as a
Rejection naming the reason, never silently dropped.
"""

from __future__ import annotations

import io
import os
import posixpath
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 512 * MB
    zip_max_total_bytes: int = 20_000 * MB
    zip_max_ratio: int = 200
    zip_max_depth: int = 2

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            max_file_bytes=settings.REFSET_MAX_FILE_MB * MB,
            zip_max_total_bytes=settings.REFSET_ZIP_MAX_TOTAL_MB * MB,
            zip_max_ratio=settings.REFSET_ZIP_MAX_RATIO,
        )


@dataclass
class Candidate:
    name: str
    size: int
    read: Callable[[], bytes]


@dataclass
class Rejection:
    name: str
    reason: str


Item = Candidate | Rejection


def _unsafe_member(name: str) -> bool:
    normal = posixpath.normpath(name.replace("\\", "/"))
    return (
        name.startswith(("/", "\\"))
        or (len(name) > 1 and name[1] == ":")
        or normal == ".."
        or normal.startswith("../")
        or "/../" in f"/{name.replace(chr(92), '/')}/"
    )


def from_zip(name: str, data: bytes | Path, limits: Limits, depth: int = 0) -> Iterator[Item]:
    """Members of a zip given as bytes or a path (and of zips inside it, to a depth)."""
    try:
        archive = _open_zip(data)
    except (zipfile.BadZipFile, OSError) as exc:
        yield Rejection(name, f"not a readable zip archive ({exc})")
        return
    total = 0
    with archive:
        for info in archive.infolist():
            member = f"{name}!/{info.filename}"
            if info.is_dir():
                continue
            if _unsafe_member(info.filename):
                yield Rejection(member, "unsafe path in zip (absolute or '..'): not extracted")
                continue
            if info.flag_bits & 0x1:
                yield Rejection(member, "encrypted zip member: cannot read")
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 1 * MB and ratio > limits.zip_max_ratio:
                yield Rejection(
                    member,
                    f"compression ratio {ratio:.0f}:1 exceeds "
                    f"{limits.zip_max_ratio}:1 (zip bomb guard)",
                )
                continue
            if info.file_size > limits.max_file_bytes:
                yield Rejection(
                    member,
                    f"{info.file_size / MB:.0f} MB exceeds the "
                    f"{limits.max_file_bytes / MB:.0f} MB file limit",
                )
                continue
            total += info.file_size
            if total > limits.zip_max_total_bytes:
                limit = limits.zip_max_total_bytes / MB
                yield Rejection(
                    member, f"archive expands past {limit:.0f} MB (zip bomb guard): rest skipped"
                )
                return

            def read(info=info) -> bytes:
                with _open_zip(data) as again, again.open(info) as fh:
                    content = fh.read(info.file_size + 1)
                if len(content) > info.file_size:
                    raise ValueError("member is larger than its header says (zip bomb guard)")
                return content

            if info.filename.lower().endswith(".zip"):
                if depth + 1 > limits.zip_max_depth:
                    yield Rejection(member, "zip nested too deeply: not extracted")
                    continue
                try:
                    inner = read()
                except (ValueError, zipfile.BadZipFile, OSError) as exc:
                    yield Rejection(member, str(exc))
                    continue
                yield from from_zip(member, inner, limits, depth + 1)
                continue
            yield Candidate(member, info.file_size, read)


def _open_zip(data: bytes | Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)


def _file(path: Path, display: str, limits: Limits) -> Iterator[Item]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PK\x03\x04":
        yield from from_zip(display, path, limits)
        return
    if size > limits.max_file_bytes:
        yield Rejection(
            display,
            f"{size / MB:.0f} MB exceeds the {limits.max_file_bytes / MB:.0f} MB file limit",
        )
        return
    yield Candidate(display, size, path.read_bytes)


def from_paths(paths: Iterable[str | os.PathLike], limits: Limits) -> Iterator[Item]:
    """Files, folders (recursively, sorted) and zips."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _file(sub, str(sub), limits)
        elif path.is_file():
            yield from _file(path, str(path), limits)
        else:
            yield Rejection(str(path), "no such file or folder")


def from_blobs(
    blobs: Iterable[tuple[str, Callable[[], bytes], int]], limits: Limits
) -> Iterator[Item]:
    """Uploaded files as (name, read, size); zips are opened."""
    for name, read, size in blobs:
        if size > limits.max_file_bytes and not name.lower().endswith(".zip"):
            yield Rejection(
                name,
                f"{size / MB:.0f} MB exceeds the {limits.max_file_bytes / MB:.0f} MB file limit",
            )
            continue
        data = read()
        if data[:4] == b"PK\x03\x04":
            yield from from_zip(name, data, limits)
        else:
            yield Candidate(name, len(data), lambda data=data: data)
