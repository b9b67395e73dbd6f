"""Content-addressed storage of DICOM instances through Django's storage API.

The key is the SHA-256 of the stored bytes, so writing the same instance twice
is free and a key can never point at different content. Nothing here assumes a
local disk: any Django storage backend (S3-compatible included) works. Several
processes may store the same bytes at the same moment (parallel ingest, two
imports of one delivery): the one that loses the race keeps nothing of its own.
"""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


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
    saved = default_storage.save(key, ContentFile(data))
    if saved != key:
        # The backend gave the file another name because the key exists now:
        # another process stored the same bytes between our check and our save.
        # Its copy is the content-addressed one; ours is a stray duplicate.
        default_storage.delete(saved)
        if default_storage.exists(key):
            return digest, key, False
        raise OSError(f"storage renamed {key} to {saved}")  # the key must stay content-derived
    return digest, key, True


def open_instance(key: str):
    return default_storage.open(key, "rb")
