"""Content-addressed storage of DICOM instances through Django's storage API.

The key is the SHA-256 of the stored bytes, so writing the same instance twice
is free and a key can never point at different content. Nothing here assumes a
local disk: any Django storage backend (S3-compatible included) works. Several
processes may store the same bytes at the same moment (parallel ingest, two
imports of one delivery): the one that loses the race keeps nothing of its own.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable

from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils._os import safe_makedirs


def key_for(sha256: str) -> str:
    return f"instances/{sha256[:2]}/{sha256[2:4]}/{sha256}.dcm"


def put(data: bytes, *, verify: bool = False) -> tuple[str, str, bool]:
    """Store bytes; returns (sha256, key, created).

    `verify`: an existing file of another size than `data` is replaced (one left
    truncated by a writer that was killed mid-write). Only for callers that know
    no one else is writing the same key right now: a write in progress looks short.
    """
    digest = hashlib.sha256(data).hexdigest()
    key = key_for(digest)
    if default_storage.exists(key):
        if not verify or default_storage.size(key) == len(data):
            return digest, key, False
        default_storage.delete(key)
    backend = default_storage._wrapped
    if type(backend) is FileSystemStorage and not backend._allow_overwrite:
        if _save_local(backend, key, (data,)):
            return digest, key, True
        saved = None  # the key exists now: another process stored the same bytes
    else:
        saved = default_storage.save(key, ContentFile(data))
    if saved != key:
        # The backend gave the file another name because the key exists now:
        # another process stored the same bytes between our check and our save.
        # Its copy is the content-addressed one; ours is a stray duplicate.
        if saved is not None:
            default_storage.delete(saved)
        if default_storage.exists(key):
            return digest, key, False
        raise OSError(f"storage renamed {key} to {saved}")  # the key must stay content-derived
    return digest, key, True


# Directories this process has made (or found) for the local backend: the
# content-addressed layout spreads files over 65,536 of them, and Django's save
# makes the whole path again on every file.
_made_dirs: set[str] = set()


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
    backend = default_storage._wrapped
    if type(backend) is FileSystemStorage and not backend._allow_overwrite:
        return _save_local(backend, key, iter(lambda: content.read(1 << 20), b""))
    saved = default_storage.save(key, File(content))
    if saved != key:  # a concurrent writer won the race: keep one copy
        default_storage.delete(saved)
        return False
    return True


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
    return default_storage.open(key, "rb")
