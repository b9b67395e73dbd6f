"""A stored image's view, read from the start of its file: the view position and
laterality the import records (`headers.view_position`, `headers.laterality`),
for the rows imported before it recorded them. The series panel
(`study_series.view_of_header`) and `manage.py backfill_instance_views`
(imaging/backfill.py) read them here.

Only the start of the file is read (through `storage.head`: one ranged GET on S3,
growing until the header is past the tags wanted), never its pixels, and nothing
is fetched into this node's cache.
"""

from __future__ import annotations

import io

from pydicom.dataset import Dataset
from pydicom.filereader import read_partial

from annotation_server.imaging import headers, storage

# The last tag read: ViewPosition (0018,5101), Laterality (0020,0060) and
# ImageLaterality (0020,0062) all come before any tag above it.
LAST_TAG = 0x00200062
FIRST_READ = 64 * 1024
LARGEST_READ = 64 * 1024 * 1024  # a header still unfinished past this is unreadable


class UnreadableHeader(Exception):
    """The stored file cannot be read as a DICOM header (the message says why)."""


def read_view_header(key: str) -> Dataset:
    """The stored file's header up to LAST_TAG, from the start of the file only
    (no pixels). Raises UnreadableHeader."""
    count = FIRST_READ
    while True:
        try:
            size, data = storage.head(key, count)
        except OSError as exc:  # FileNotFoundError included
            raise UnreadableHeader(str(exc) or type(exc).__name__) from exc
        whole = len(data) >= size
        past = []

        def stop(tag, vr, length, past=past) -> bool:
            if tag > LAST_TAG:
                past.append(tag)
                return True
            return False

        try:
            ds = read_partial(io.BytesIO(data), stop_when=stop)
        except Exception as exc:  # not DICOM, or cut off in the middle of an element
            if whole or count >= LARGEST_READ:
                raise UnreadableHeader(str(exc) or type(exc).__name__) from exc
        else:
            if past or whole:
                return ds
            if count >= LARGEST_READ:
                raise UnreadableHeader(f"header longer than {LARGEST_READ} bytes")
        count *= 4


def recorded_views(ds: Dataset) -> dict[str, str]:
    """What the import records from this header (the import's own functions)."""
    return {"view_position": headers.view_position(ds), "laterality": headers.laterality(ds)}


def shown(views: dict[str, str]) -> dict[str, str]:
    """Recorded views as the series panel names them: the laterality only as L or
    R (U and B are not marked, like the image's own markers, `pixels.view_markers`)."""
    side = views["laterality"]
    return {
        "view_position": views["view_position"],
        "laterality": side if side in ("L", "R") else "",
    }
