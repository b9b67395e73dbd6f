"""Built series streams, kept in storage under a key derived from the stream's
strong ETag (which covers every instance's content hash, frame and placement).

The first fetch of a series decodes every frame and, while streaming it to the
client, writes the same bytes to a temporary file; when the stream completes it
is saved to storage. Later fetches are a plain file response (sendfile under a
production server). An interrupted first fetch leaves nothing behind. Content
never changes under a key, so there is nothing to invalidate.

On a remote store (S3) a stored stream is served from this node's local cache
(storage.open_cached): fetched from the store on its first request here, a plain
local file after that. The cache is only a cache: without it the stream is
fetched again from the store, never rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterable, Iterator

from django.core.files.storage import default_storage

from annotation_server.imaging import storage

logger = logging.getLogger(__name__)


def key_for(etag: str) -> str:
    digest = hashlib.sha256(etag.encode()).hexdigest()
    return f"derived/series-streams/{digest[:2]}/{digest}.rsp"


def open_stored(key: str):
    """The stored stream at `key`, opened for reading, or None when it is not
    stored (or unreadable: the caller rebuilds it). On a remote store, a stream
    not yet in this node's cache is fetched only when it is read (a caller that
    only asks whether it exists costs one existence check)."""
    try:
        if not storage.is_remote():
            if default_storage.exists(key):
                return default_storage.open(key, "rb")
            return None
        cached = storage.cached_copy(key)
        if cached is not None:
            return cached
        if default_storage.exists(key):
            return _OpenedOnRead(key)
    except OSError:
        logger.warning("stored series stream %s unreadable; rebuilding", key)
    return None


class _OpenedOnRead:
    """A stored file opened (through this node's cache) on first use of any file
    method; closing one never used costs nothing."""

    def __init__(self, key: str):
        self._key = key
        self._handle = None

    def __getattr__(self, name):
        if self._handle is None:
            self._handle = storage.open_cached(self._key)
        return getattr(self._handle, name)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def tee_to_storage(chunks: Iterable[bytes], key: str) -> Iterator[bytes]:
    """Yield `chunks` and, once all were yielded, store their concatenation at `key`."""
    with tempfile.TemporaryFile() as spool:
        for chunk in chunks:
            spool.write(chunk)
            yield chunk
        try:
            # Whole or not at all: a stream cut short (a full disk) must never be
            # served as the series.
            storage.save_whole(key, spool)
        except OSError:
            logger.exception("could not store series stream %s", key)
