"""Built series streams, kept in storage under a key derived from the stream's
strong ETag (which covers every instance's content hash, frame and placement).

The first fetch of a series decodes every frame and, while streaming it to the
client, writes the same bytes to a temporary file; when the stream completes it
is saved to storage. Later fetches are a plain file response (sendfile under a
production server). An interrupted first fetch leaves nothing behind. Content
never changes under a key, so there is nothing to invalidate.
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
    try:
        if default_storage.exists(key):
            return default_storage.open(key, "rb")
    except OSError:
        logger.warning("stored series stream %s unreadable; rebuilding", key)
    return None


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
