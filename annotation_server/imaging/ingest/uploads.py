"""Uploads from the browser and the REST API: stored first, imported by a job.

Uploaded bytes go to Django storage (not a local temp dir), so the worker that
runs the import may be on another machine. Django streams a request's files to
temporary files on disk (FILE_UPLOAD_MAX_MEMORY_SIZE) and storage copies them in
chunks; the import job reads each file only when it is prepared (sources.from_storage).
The files' names are kept there too (names.json, deleted with the uploads), not in
the job's parameters: a photograph's file name often names the patient."""

from __future__ import annotations

import json
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from annotation_server.imaging.ingest.sources import Item, Limits, from_storage
from annotation_server.jobs import services as jobs

NAMES = "names.json"  # the uploads' file names, beside them in storage


@transaction.atomic
def queue_import(project, files, *, user, site=None, names=None):
    """Store the uploaded files and queue an `imaging.import` job for them.
    `names`: the display name (relative path) of each file, when the client sent one."""
    batch = uuid.uuid4().hex
    uploads, originals = [], []
    for i, upload in enumerate(files):
        key = default_storage.save(f"uploads/{batch}/{i:06d}", upload)
        name = names[i] if names and i < len(names) and names[i] else upload.name
        originals.append(name)
        uploads.append({"name": f"upload {i + 1}", "key": key, "size": upload.size})
    # The file names (a photograph's may name the patient) stay beside the uploaded
    # bytes, deleted with them, never in the job's row.
    default_storage.save(f"uploads/{batch}/{NAMES}", ContentFile(json.dumps(originals).encode()))
    return jobs.enqueue(
        "imaging.import",
        project=project,
        user=user,
        params={"uploads": uploads, "site_id": site.pk if site else None},
    )


@contextmanager
def stored_uploads(uploads: list[dict], limits: Limits) -> Iterator[Iterator[Item]]:
    """The items of the uploads queue_import stored (params["uploads"]), with a
    scratch folder for local copies of zips from remote storage, removed after."""
    names_key = posixpath.join(posixpath.dirname(uploads[0]["key"]), NAMES) if uploads else ""
    names = [u["name"] for u in uploads]
    if names_key and default_storage.exists(names_key):
        with default_storage.open(names_key, "rb") as fh:
            stored = json.loads(fh.read())
        if len(stored) == len(names):
            names = stored
    try:
        with tempfile.TemporaryDirectory(
            prefix="refset-import-", dir=settings.FILE_UPLOAD_TEMP_DIR
        ) as scratch:
            yield from_storage(
                ((name, u["key"]) for name, u in zip(names, uploads, strict=True)), limits, scratch
            )
    finally:
        if names_key:
            default_storage.delete(names_key)
