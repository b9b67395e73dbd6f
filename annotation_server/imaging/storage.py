"""Content-addressed storage of DICOM instances through Django's storage API.

The key is the SHA-256 of the stored bytes, so writing the same instance twice
is free and a key can never point at different content. Nothing here assumes a
local disk: any Django storage backend (S3-compatible included) works.
"""

from __future__ import annotations

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def key_for(sha256: str) -> str:
    return f"instances/{sha256[:2]}/{sha256[2:4]}/{sha256}.dcm"


def put(data: bytes) -> tuple[str, str, bool]:
    """Store bytes; returns (sha256, key, created)."""
    digest = hashlib.sha256(data).hexdigest()
    key = key_for(digest)
    if default_storage.exists(key):
        return digest, key, False
    saved = default_storage.save(key, ContentFile(data))
    if saved != key:  # a backend that renamed the file: the key must stay content-derived
        default_storage.delete(saved)
        raise OSError(f"storage renamed {key} to {saved}")
    return digest, key, True


def open_instance(key: str):
    return default_storage.open(key, "rb")
