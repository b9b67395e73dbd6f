"""Uploads from the browser and the REST API: stored first, imported by a job.

Uploaded bytes go to Django storage (not a local temp dir), so the worker that
runs the import may be on another machine."""

from __future__ import annotations

import uuid

from django.core.files.storage import default_storage
from django.db import transaction

from annotation_server.jobs import services as jobs


@transaction.atomic
def queue_import(project, files, *, user, site=None, names=None):
    """Store the uploaded files and queue an `imaging.import` job for them.
    `names`: the display name (relative path) of each file, when the client sent one."""
    batch = uuid.uuid4().hex
    uploads = []
    for i, upload in enumerate(files):
        key = default_storage.save(f"uploads/{batch}/{i:06d}", upload)
        name = names[i] if names and i < len(names) and names[i] else upload.name
        uploads.append({"name": name, "key": key, "size": upload.size})
    return jobs.enqueue(
        "imaging.import",
        project=project,
        user=user,
        params={"uploads": uploads, "site_id": site.pk if site else None},
    )
