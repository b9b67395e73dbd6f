"""Where files come from: paths (files, folders, zips, recursively) and uploads.

Every candidate is yielded with a display name; archives are opened with the
zip-bomb and path-traversal guards, and what fails a guard is yielded as a
Rejection naming the reason (and the setting that sets the limit), never
silently dropped.

Limits, on every way in (paths, uploads, STOW parts, zip members):
- a file (a zip too, and a zip member once expanded) larger than
  REFSET_MAX_FILE_MB is refused;
- a zip member of 1 MiB or more that expands more than REFSET_ZIP_MAX_RATIO
  times its compressed size is refused (zip bomb guard);
- one archive stops expanding past REFSET_ZIP_MAX_TOTAL_MB;
- one import stops taking files past REFSET_IMPORT_MAX_TOTAL_MB of expanded
  bytes (plain files by their size, zip members by their expanded size): a file
  or member that does not fit is refused, and so is the rest of its archive.
Sizes are checked from the file system, the storage or the zip directory before
anything is read; a member is never read past the size its header states. Nothing
holds a whole upload in memory: candidates read their file when they are
prepared, one at a time, and zips are opened from a file on disk.
"""

from __future__ import annotations

import io
import os
import posixpath
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

MB = 1024 * 1024
# Members at least this large are held to the compression-ratio guard (smaller
# ones are bounded by the archive and import totals).
RATIO_GUARD_MIN_BYTES = 1 * MB


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 512 * MB
    zip_max_total_bytes: int = 20_000 * MB
    zip_max_ratio: int = 200
    zip_max_depth: int = 2
    import_max_total_bytes: int = 50_000 * MB

    @classmethod
    def from_settings(cls) -> Limits:
        from django.conf import settings

        return cls(
            max_file_bytes=settings.REFSET_MAX_FILE_MB * MB,
            zip_max_total_bytes=settings.REFSET_ZIP_MAX_TOTAL_MB * MB,
            zip_max_ratio=settings.REFSET_ZIP_MAX_RATIO,
            import_max_total_bytes=settings.REFSET_IMPORT_MAX_TOTAL_MB * MB,
        )


class Budget:
    """The expanded bytes one import may still take (REFSET_IMPORT_MAX_TOTAL_MB)."""

    def __init__(self, limits: Limits):
        self.limit = limits.import_max_total_bytes
        self.used = 0

    def take(self, size: int) -> bool:
        """Count `size` bytes against the import; False (nothing counted) if they
        do not fit."""
        if self.used + size > self.limit:
            return False
        self.used += size
        return True


def _mb(size: int) -> str:
    value = size / MB
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def too_large(size: int, limits: Limits) -> str:
    """The reason a file of `size` bytes is refused, or "" if it is not too large."""
    if size <= limits.max_file_bytes:
        return ""
    return _("%(size)s MB exceeds the %(limit)s MB file limit (REFSET_MAX_FILE_MB)") % {
        "size": _mb(size),
        "limit": _mb(limits.max_file_bytes),
    }


def over_budget(budget: Budget) -> str:
    """Short enough for a STOW ErrorComment (64 characters) to keep the setting."""
    return _("import total over %(limit)s MB (REFSET_IMPORT_MAX_TOTAL_MB)") % {
        "limit": _mb(budget.limit)
    }


@dataclass
class Candidate:
    name: str
    size: int
    read: Callable[[], bytes]
    # Set by photos.attach (every import): how the report names the file when it
    # turns out to be a photograph (never its file name), and its manifest row.
    label: str = ""
    photo_row: object | None = None  # photo.ManifestRow
    manifest: str = ""  # the import's manifest: "" none, "ok", "unusable" (no good row)


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


def from_zip(
    name: str,
    data: bytes | Path,
    limits: Limits,
    depth: int = 0,
    budget: Budget | None = None,
) -> Iterator[Item]:
    """Members of a zip given as bytes or a path (and of zips inside it, to a depth).
    Expanded member sizes count against `budget` (the import's; a new one if none)."""
    budget = budget if budget is not None else Budget(limits)
    try:
        archive = _open_zip(data)
    except (zipfile.BadZipFile, OSError) as exc:
        yield Rejection(name, _("not a readable zip archive (%(error)s)") % {"error": exc})
        return
    total = 0
    with archive:
        for info in archive.infolist():
            member = f"{name}!/{info.filename}"
            if info.is_dir():
                continue
            if _unsafe_member(info.filename):
                yield Rejection(member, _("unsafe path in zip (absolute or '..'): not extracted"))
                continue
            if info.flag_bits & 0x1:
                yield Rejection(member, _("encrypted zip member: cannot read"))
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size >= RATIO_GUARD_MIN_BYTES and ratio > limits.zip_max_ratio:
                yield Rejection(
                    member,
                    _(
                        "compression ratio %(ratio)s:1 exceeds %(limit)s:1 "
                        "(REFSET_ZIP_MAX_RATIO, zip bomb guard): not extracted"
                    )
                    % {"ratio": f"{ratio:.0f}", "limit": limits.zip_max_ratio},
                )
                continue
            if reason := too_large(info.file_size, limits):
                yield Rejection(member, reason)
                continue
            total += info.file_size
            if total > limits.zip_max_total_bytes:
                yield Rejection(
                    member,
                    _(
                        "archive expands past %(limit)s MB (REFSET_ZIP_MAX_TOTAL_MB, "
                        "zip bomb guard): the rest of the archive skipped"
                    )
                    % {"limit": _mb(limits.zip_max_total_bytes)},
                )
                return
            if not budget.take(info.file_size):
                rest = _("the rest of the archive skipped")
                yield Rejection(member, f"{over_budget(budget)}; {rest}")
                return

            def read(info=info) -> bytes:
                with _open_zip(data) as again, again.open(info) as fh:
                    content = fh.read(info.file_size + 1)
                if len(content) > info.file_size:
                    raise ValueError("member is larger than its header says (zip bomb guard)")
                return content

            if info.filename.lower().endswith(".zip"):
                if depth + 1 > limits.zip_max_depth:
                    yield Rejection(member, _("zip nested too deeply: not extracted"))
                    continue
                try:
                    inner = read()
                except (ValueError, zipfile.BadZipFile, OSError) as exc:
                    yield Rejection(member, str(exc))
                    continue
                yield from from_zip(member, inner, limits, depth + 1, budget)
                continue
            yield Candidate(member, info.file_size, read)


def _open_zip(data: bytes | Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data)


def _is_zip(head: bytes) -> bool:
    return head[:4] == b"PK\x03\x04"


def _file(path: Path, display: str, limits: Limits, budget: Budget) -> Iterator[Item]:
    size = path.stat().st_size
    if reason := too_large(size, limits):
        yield Rejection(display, reason)
        return
    with open(path, "rb") as fh:
        head = fh.read(4)
    if _is_zip(head):
        yield from from_zip(display, path, limits, budget=budget)
        return
    if not budget.take(size):
        yield Rejection(display, over_budget(budget))
        return
    yield Candidate(display, size, path.read_bytes)


def from_paths(paths: Iterable[str | os.PathLike], limits: Limits) -> Iterator[Item]:
    """Files, folders (recursively, sorted) and zips: one import."""
    budget = Budget(limits)
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                yield from _file(sub, str(sub), limits, budget)
        elif path.is_file():
            yield from _file(path, str(path), limits, budget)
        else:
            yield Rejection(str(path), _("no such file or folder"))


def from_storage(
    uploads: Iterable[tuple[str, str]], limits: Limits, scratch: str | os.PathLike
) -> Iterator[Item]:
    """Uploaded files kept in Django storage, as (display name, storage key): one
    import. Each is sized from the storage and read only when it is prepared; a
    zip is opened from its local file (the storage's own path, or a copy written
    in chunks under `scratch`, which must outlive the import)."""
    from django.core.files.storage import default_storage

    from annotation_server.imaging import storage

    budget = Budget(limits)
    for i, (name, key) in enumerate(uploads):
        try:
            # Size and magic number only: on S3 one ranged read, not the whole upload.
            size, head = storage.head(key, 4)
        except OSError as exc:
            yield Rejection(name, _("could not read the upload (%(error)s)") % {"error": exc})
            continue
        if reason := too_large(size, limits):
            yield Rejection(name, reason)
            continue
        if _is_zip(head):
            try:
                local = _local_copy(default_storage, key, Path(scratch) / f"{i:06d}.zip")
            except OSError as exc:
                yield Rejection(name, _("could not read the upload (%(error)s)") % {"error": exc})
                continue
            yield from from_zip(name, local, limits, budget=budget)
            continue
        if not budget.take(size):
            yield Rejection(name, over_budget(budget))
            continue
        yield Candidate(name, size, lambda key=key, size=size: _read_stored(key, size))


def _local_copy(storage, key: str, target: Path) -> Path:
    """A local file with the stored bytes: the storage's own file where it has
    one (the local disk of this process's machine), otherwise a copy written
    chunk by chunk into `target` (the import's private scratch folder, which the
    import's forked workers read on this same machine)."""
    from annotation_server.imaging import storage as stored

    try:
        return Path(storage.path(key))
    except NotImplementedError:  # remote storage (S3...)
        pass
    with open(target, "wb") as dst:
        stored.download(key, dst)
    return target


def _read_stored(key: str, size: int) -> bytes:
    from annotation_server.imaging import storage

    data = storage.read(key, size + 1)
    if len(data) > size:
        raise ValueError(_("the upload changed size after it was checked"))
    return data
