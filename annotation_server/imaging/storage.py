"""Content-addressed storage of DICOM instances through Django's storage API,
and this node's local cache of what it reads from a remote store.

The key is the SHA-256 of the stored bytes, so writing the same instance twice
is free and a key can never point at different content. Nothing here assumes a
local disk shared between processes: any Django storage backend works, and two
are written without Django's save machinery so that a key only ever holds a
whole file and the writer learns whether it created it:
- the local disk (FileSystemStorage): a temporary file beside the key, then a
  hard link to the key (fails if the key exists);
- S3-compatible object storage (django-storages' S3Storage): one PutObject with
  `If-None-Match: *` (refused with 412 when the key exists). An object store
  publishes an object only once its upload is complete, so a killed writer
  leaves nothing under the key; a server that ignores the condition overwrites
  the key with the same bytes, which is harmless.
Several processes may store the same bytes at the same moment (parallel ingest,
two imports of one delivery): the one that loses the race keeps nothing of its own.

Reading from a remote store goes through `open_cached`: content-addressed keys
(instances, derived series streams and thumbnails) are copied once into this
node's REFSET_STORAGE_CACHE_DIR and read from there. A key's content never
changes, so the copy never goes stale; the cache is only a cache (each copy is
published whole by a rename, and removing the folder loses nothing).
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils._os import safe_makedirs

logger = logging.getLogger(__name__)

# Key prefixes whose content never changes under a key: safe to cache locally.
IMMUTABLE_PREFIXES = ("instances/", "derived/")
COPY_CHUNK = 1 << 20
# Files from this size go to S3 as a multipart upload (a single PutObject stops at 5 GB).
MULTIPART_FROM = 1 << 30


def _wrapped():
    # default_storage is a LazyObject: touching an attribute sets it up.
    default_storage.exists  # noqa: B018
    return default_storage._wrapped


def is_s3(storage=None) -> bool:
    """True for django-storages' S3 backend (any S3-compatible server)."""
    storage = storage if storage is not None else _wrapped()
    try:
        from storages.backends.s3 import S3Storage
    except ImportError:  # django-storages not installed: no S3 backend configured
        return False
    return isinstance(storage, S3Storage)


def is_local(storage=None) -> bool:
    """True when stored files are files of this machine's file system."""
    storage = storage if storage is not None else _wrapped()
    return isinstance(storage, FileSystemStorage)


def describe() -> str:
    """What the default storage is, for /healthz and start-up lines: the class and,
    for S3, the endpoint and bucket (never the credentials)."""
    storage = _wrapped()
    name = type(storage).__name__
    if is_s3(storage):
        where = storage.endpoint_url or "AWS"
        prefix = f"/{storage.location}" if storage.location else ""
        return f"{name} s3://{storage.bucket_name}{prefix} at {where}"
    if is_local(storage):
        return f"{name} {storage.location}"
    return name


def key_for(sha256: str) -> str:
    return f"instances/{sha256[:2]}/{sha256[2:4]}/{sha256}.dcm"


def put(data: bytes, *, verify: bool = False) -> tuple[str, str, bool]:
    """Store bytes; returns (sha256, key, created).

    A content-addressed key that exists is complete (every writer below publishes
    whole files only), so dedup is one existence check. `verify`: an existing
    file of another size than `data` is replaced (one left truncated by a writer
    of an older release that wrote in place). Only for callers that know no one
    else is writing the same key right now.
    """
    digest = hashlib.sha256(data).hexdigest()
    key = key_for(digest)
    if default_storage.exists(key):
        if not verify or default_storage.size(key) == len(data):
            return digest, key, False
        default_storage.delete(key)
    return digest, key, _publish(key, ContentFile(data), (data,))


def save_whole(key: str, content) -> bool:
    """Store the file object `content` at `key` so that the key only ever holds
    the whole file: a write cut off (a full disk, a killed process) leaves
    nothing under it. False (nothing stored) when the key exists already.

    Django's FileSystemStorage.save writes straight into the final name and
    leaves what it wrote when a write fails; object stores publish an upload
    only once it is complete."""
    if default_storage.exists(key):
        return False
    content.seek(0)
    return _publish(key, File(content), iter(lambda: content.read(COPY_CHUNK), b""))


def _publish(key: str, content: File, chunks: Iterable[bytes]) -> bool:
    """Write `content` (or, on the local disk, `chunks`) at `key` unless it
    exists; True when this call created it."""
    storage = _wrapped()
    if type(storage) is FileSystemStorage and not storage._allow_overwrite:
        return _save_local(storage, key, chunks)
    if is_s3(storage):
        return _put_s3(storage, key, content)
    saved = default_storage.save(key, content)
    if saved != key:
        # The backend gave the file another name because the key exists now:
        # another process stored it between our check and our save. Its copy is
        # the one at the key; ours is a stray duplicate.
        default_storage.delete(saved)
        if default_storage.exists(key):
            return False
        raise OSError(f"storage renamed {key} to {saved}")  # the key must stay content-derived
    return True


def _put_s3(storage, key: str, content: File) -> bool:
    """One PutObject that only creates: `If-None-Match: *` makes the server refuse
    (412) when the key exists, so of two writers of the same key exactly one is
    told it created it. Bypasses S3Storage.save, whose name check (file_overwrite
    off) would cost a HEAD per file and rename a key another writer just took."""
    from botocore.exceptions import ClientError

    name = storage._normalize_name(key)
    params = {
        k: v
        for k, v in storage.get_object_parameters(name).items()
        if k
        in ("CacheControl", "ContentType", "ServerSideEncryption", "SSEKMSKeyId", "StorageClass")
    }
    params.setdefault("ContentType", "application/octet-stream")
    body = getattr(content, "file", content)  # boto3 sizes a plain file object by seeking
    size = body.seek(0, os.SEEK_END)
    body.seek(0)
    if size >= MULTIPART_FROM:
        # One PutObject takes at most 5 GB. A multipart upload is published only by
        # its completion (never partial either); without the condition, two writers
        # of the same content-derived key write the same bytes.
        storage.bucket.Object(name).upload_fileobj(
            body, ExtraArgs=params, Config=storage.transfer_config
        )
        return True
    try:
        storage.connection.meta.client.put_object(
            Bucket=storage.bucket_name, Key=name, Body=body, IfNoneMatch="*", **params
        )
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = exc.response.get("Error", {}).get("Code", "")
        if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False  # another writer stored it first
        raise OSError(f"could not store {key}: {exc}") from exc
    return True


# Directories this process has made (or found) for the local backend: the
# content-addressed layout spreads files over 65,536 of them, and Django's save
# makes the whole path again on every file.
_made_dirs: set[str] = set()


def _save_local(backend: FileSystemStorage, key: str, chunks: Iterable[bytes]) -> bool:
    """What FileSystemStorage.save does for a new name (same directory and file
    permissions, never replacing a file), without its per-file name checks and
    makedirs: False when the file exists.

    The bytes go to a temporary file beside the key, which is then hard-linked to
    the key (fails if the key exists) and removed: a file at a content key is
    always complete, even when the writer is killed mid-write, so a later import
    that finds the key can trust it."""
    path = backend.path(key)
    directory = os.path.dirname(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    temporary = f"{path}.part-{os.getpid()}-{secrets.token_hex(4)}"
    for attempt in (0, 1):
        if directory not in _made_dirs or attempt:
            mode = backend.directory_permissions_mode
            if mode is not None:
                safe_makedirs(directory, mode, exist_ok=True)
            else:
                os.makedirs(directory, exist_ok=True)
            _made_dirs.add(directory)
        try:
            fd = os.open(temporary, flags, 0o666)
            break
        except FileNotFoundError:  # removed since this process made it
            _made_dirs.discard(directory)
            if attempt:
                raise
    try:
        with os.fdopen(fd, "wb", closefd=True) as fh:
            for chunk in chunks:
                fh.write(chunk)
        if backend.file_permissions_mode is not None:
            os.chmod(temporary, backend.file_permissions_mode)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(temporary)


def open_instance(key: str):
    """A stored instance, opened for reading (from this node's cache when the
    storage is remote)."""
    return open_cached(key)


# -- this node's cache of a remote store ------------------------------------------------


def open_cached(key: str):
    """Open the stored file `key` for reading. On a local disk that is the file
    itself; on a remote store a content-addressed key (IMMUTABLE_PREFIXES) is read
    from this node's cache, fetched into it first when missing. Other keys, and
    every key when the cache cannot be written, are read from the store.
    Raises FileNotFoundError when the key is not stored."""
    storage = _wrapped()
    if not is_remote(storage) or not key.startswith(IMMUTABLE_PREFIXES):
        return default_storage.open(key, "rb")
    return _cache().open(storage, key)


def local_path(key: str) -> Path:
    """A file of this machine holding the stored bytes of `key`, for code that
    needs a path (a zip writer copying files): the stored file itself on the local
    disk, else this node's cached copy of a content-addressed key (fetched when
    missing; the cache may remove it later, so use it at once). FileNotFoundError
    when it is not stored; ValueError for a key the cache does not hold (not
    content-addressed) on a remote store."""
    storage = _wrapped()
    if is_local(storage):
        return Path(storage.path(key))
    if not key.startswith(IMMUTABLE_PREFIXES):
        raise ValueError(f"{key} is not content-addressed: open it through the storage")
    cache = _cache()
    cache.open(storage, key).close()
    path = cache.path(key)
    if not path.is_file():  # the cache could not be written
        raise OSError(f"no local copy of {key} in {cache.root}")
    return path


class StoredPath(os.PathLike):
    """A stored file given to path-bound code (pydicom, a zip writer, `open`) as
    a path: the local file is made only when the path is used (os.fspath), from
    this node's cache (`local_path`), so a worker needs no disk shared with the
    process that stored the file, and a long export does not fetch every
    instance up front (the cache could trim the first before the last is used).
    Equal and hashed by its key, so it serves as a cache key (lru_cache) as a
    string path would."""

    __slots__ = ("key",)

    def __init__(self, key: str):
        self.key = key

    def __fspath__(self) -> str:
        return str(local_path(self.key))

    def __str__(self) -> str:
        return self.__fspath__()

    def __repr__(self) -> str:
        return f"StoredPath({self.key!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, StoredPath) and other.key == self.key

    def __hash__(self) -> int:
        return hash(("StoredPath", self.key))


def readable_path(key: str) -> str | StoredPath:
    """A path-like for the stored file `key` that path-bound code can open on this
    node: the file itself on the local disk, else a StoredPath (fetched into this
    node's cache when used)."""
    storage = _wrapped()
    if is_local(storage):
        return storage.path(key)
    return StoredPath(key)


def _get_object(storage, key: str) -> dict:
    """One S3 GetObject of `key` (its streaming Body and ContentLength);
    FileNotFoundError when it is not stored, OSError when it cannot be read."""
    from botocore.exceptions import ClientError

    try:
        return storage.connection.meta.client.get_object(
            Bucket=storage.bucket_name, Key=storage._normalize_name(key)
        )
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise FileNotFoundError(f"not stored: {key}") from exc
        raise OSError(f"could not read {key}: {exc}") from exc


def open_stream(key: str) -> tuple[object, int]:
    """(file object, size) reading the stored file `key` from its start, for a
    streamed HTTP response: on S3 one GetObject whose body is read as it is sent
    (S3Storage.open would first copy the whole object into a temporary file),
    else the storage's own file. FileNotFoundError when it is not stored."""
    storage = _wrapped()
    if not is_s3(storage):
        return default_storage.open(key, "rb"), default_storage.size(key)
    answer = _get_object(storage, key)
    return answer["Body"], int(answer["ContentLength"])


def cached_copy(key: str):
    """This node's cached copy of `key`, opened for reading, or None when it has
    none (or the storage is not remote)."""
    if not is_remote() or not key.startswith(IMMUTABLE_PREFIXES):
        return None
    return _cache().open_local(key)


def is_remote(storage=None) -> bool:
    """True when reading a stored file crosses the network (not the local disk,
    not this process's memory): the reads `open_cached` caches."""
    from django.core.files.storage import InMemoryStorage

    storage = storage if storage is not None else _wrapped()
    return not isinstance(storage, FileSystemStorage | InMemoryStorage)


class LocalCache:
    """Copies of immutable stored files under `root`, at most `limit` bytes
    (least recently used removed first once writes pass a tenth of the limit)."""

    def __init__(self, root: Path, limit: int):
        self.root = root
        self.limit = limit
        self.written = 0
        self.lock = threading.Lock()

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"unsafe storage key {key!r}")
        return path

    def open_local(self, key: str):
        """The cached copy of `key`, opened, or None."""
        path = self.path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 (the caller closes it)
        except FileNotFoundError:
            return None
        try:
            os.utime(path)  # recently used: trimmed last
        except OSError:
            pass
        return handle

    def open(self, storage, key: str):
        handle = self.open_local(key)
        if handle is not None:
            return handle
        path = self.path(key)
        try:
            self._fetch(storage, key, path)
        except FileNotFoundError:
            raise
        except OSError:
            logger.warning("cannot cache %s in %s; reading from storage", key, self.root)
            return storage.open(key, "rb")
        return open(path, "rb")  # noqa: SIM115 (the caller closes it)

    def _fetch(self, storage, key: str, path: Path) -> None:
        """Copy `key` to `path` whole: into a private temporary name first, then
        renamed over (another process fetching the same key writes the same bytes)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.part-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            with open(temporary, "wb") as dst:
                _download(storage, key, dst)
                size = dst.tell()
            os.replace(temporary, path)
        finally:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
        with self.lock:
            self.written += size
            due = self.written > self.limit // 10
            if due:
                self.written = 0
        if due:
            self.trim()

    def trim(self, *, stale_part_s: float = 3600) -> int:
        """Remove least recently used copies until the cache holds at most 80% of
        its limit, and temporary files older than `stale_part_s` (a fetch killed
        mid-copy). Returns the bytes removed."""
        files, total, removed = [], 0, 0
        now = time.time()
        for dirpath, _dirs, names in os.walk(self.root):
            for name in names:
                full = os.path.join(dirpath, name)
                try:
                    st = os.stat(full)
                except FileNotFoundError:
                    continue
                if ".part-" in name:
                    if now - st.st_mtime > stale_part_s:
                        removed += _unlink(full, st.st_size)
                    continue
                files.append((st.st_mtime, st.st_size, full))
                total += st.st_size
        if total <= self.limit:
            return removed
        files.sort()
        target = self.limit * 8 // 10
        for _mtime, size, full in files:
            if total <= target:
                break
            gone = _unlink(full, size)
            total -= gone
            removed += gone
        return removed


def download(key: str, dst) -> None:
    """Copy the stored file `key` into the open binary file `dst`, in chunks
    (never the whole file in memory). FileNotFoundError when it is not stored."""
    _download(_wrapped(), key, dst)


def read(key: str, limit: int) -> bytes:
    """At most `limit` bytes of the stored file `key`, from its start (on S3 one
    GetObject streamed into memory, not first spooled whole as S3Storage.open
    does). FileNotFoundError when it is not stored."""
    storage = _wrapped()
    if not is_s3(storage):
        with default_storage.open(key, "rb") as fh:
            return fh.read(limit)
    answer = _get_object(storage, key)
    with answer["Body"] as body:
        return body.read(limit)


def head(key: str, count: int) -> tuple[int, bytes]:
    """The size of the stored file `key` and its first `count` bytes, without
    reading the rest (on S3: one ranged GetObject). FileNotFoundError when it is
    not stored."""
    storage = _wrapped()
    if not is_s3(storage):
        size = default_storage.size(key)
        with default_storage.open(key, "rb") as fh:
            return size, fh.read(count)
    from botocore.exceptions import ClientError

    name = storage._normalize_name(key)
    client = storage.connection.meta.client
    try:
        answer = client.get_object(
            Bucket=storage.bucket_name, Key=name, Range=f"bytes=0-{max(count, 1) - 1}"
        )
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404:
            raise FileNotFoundError(f"not stored: {key}") from exc
        if status == 416:  # an empty object has no byte 0
            return 0, b""
        raise OSError(f"could not read {key}: {exc}") from exc
    with answer["Body"] as body:
        first = body.read()[:count]
    total = answer.get("ContentRange", "").rpartition("/")[2]
    size = int(total) if total.isdigit() else int(answer["ContentLength"])
    return size, first


def _download(storage, key: str, dst) -> None:
    """Copy the stored file `key` into the open file `dst` (FileNotFoundError when
    it is not stored). From S3 straight into `dst` (S3Storage.open would first
    spool the whole object in memory)."""
    if is_s3(storage):
        from botocore.exceptions import ClientError

        try:
            storage.bucket.Object(storage._normalize_name(key)).download_fileobj(
                dst, Config=storage.transfer_config
            )
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                raise FileNotFoundError(f"not stored: {key}") from exc
            raise OSError(f"could not read {key}: {exc}") from exc
        return
    with storage.open(key, "rb") as src:
        shutil.copyfileobj(src, dst, COPY_CHUNK)


def _unlink(path: str, size: int) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    return size


_caches: dict[tuple[str, int], LocalCache] = {}


def _cache() -> LocalCache:
    from django.conf import settings

    root = str(settings.REFSET_STORAGE_CACHE_DIR)
    limit = int(settings.REFSET_STORAGE_CACHE_MB) * (1 << 20)
    cache = _caches.get((root, limit))
    if cache is None:
        cache = _caches[(root, limit)] = LocalCache(Path(root), limit)
    return cache
