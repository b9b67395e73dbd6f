"""The series of a case's study, for the series panel of the viewers, and their
thumbnails.

Who sees what is `ImagingQuerySet.visible_to` (querysets.py: the case's own
series and the other image series of its study, read-only); the views only
call these with series that rule already let through.

A thumbnail is the middle slice of the series (in slice order) windowed with the
series' default window (the file's first preset, else the image's histogram:
`pixels.default_window`), fitted in size x size and encoded as PNG. It is
computed from the stored de-identified file through the storage API (on S3,
through this node's local cache: storage.open_cached) and kept in storage under
a key derived from the content hash of that slice and every
parameter shaping it (like stream_cache), so it is built once and never goes
stale; the HTTP layer adds a strong ETag on the same parts.

An instance whose content is held in quarantine (pending review, redacted or
rejected, not released) is never counted or shown. Ingest gives a held file no
Instance row at all; this is the second guard, should a row ever point to one.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.db import models
from django.db.models import Count, Q
from django.utils.translation import gettext as _

from annotation_server.imaging import pixels, storage
from annotation_server.imaging.delivery import etag_for, load_dataset
from annotation_server.imaging.models import Instance, Quarantine, Series
from annotation_server.imaging.querysets import NON_IMAGE_MODALITIES
from annotation_server.imaging.view_header import (
    UnreadableHeader,
    read_view_header,
    recorded_views,
    shown,
)

logger = logging.getLogger(__name__)

THUMBNAIL_SIZE = 128
THUMBNAIL_SIZES = range(32, 513)
THUMBNAIL_VERSION = "thumb/1"  # bump when the rendering changes: new keys, new ETags


def held_hashes(project_id: int) -> models.QuerySet:
    """Content hashes of the project's files held in quarantine (not released)."""
    return (
        Quarantine.objects.filter(project_id=project_id)
        .exclude(status=Quarantine.Status.RELEASED)
        .values("sha256")
    )


def servable_instances(series: Series) -> models.QuerySet:
    """The series' frame rows that may be shown, in slice order."""
    return (
        Instance.objects.filter(series=series)
        .exclude(sha256__in=held_hashes(series.study.project_id))
        .order_by("slice_index", "frame")
    )


def middle_instance(series: Series) -> Instance | None:
    """The frame row in the middle of the series' slice order (None: no images)."""
    rows = servable_instances(series).only(
        "id", "sha256", "frame", "file", "series_id", "view_position", "laterality"
    )
    count = rows.count()
    return rows[count // 2] if count else None


NO_VIEW = {"view_position": "", "laterality": ""}


def view_of(instance: Instance) -> dict[str, str]:
    """The view position (PA, AP...) and laterality (L or R) of a frame row, what
    names a series that has no description (a photograph: the eye).

    As the import recorded them on the row (Instance.view_position and
    .laterality); for a row imported before the view position was recorded (NULL;
    `manage.py backfill_instance_views` fills it), from its header:
    `view_of_header`. Either way shown as `view_header.shown` names them."""
    if instance.view_position is None:
        return view_of_header(instance)
    return shown({"view_position": instance.view_position, "laterality": instance.laterality})


def view_of_header(instance: Instance) -> dict[str, str]:
    """What the import would have recorded from its header, shown the same way.
    Read from the start of the file only (`view_header.read_view_header`) and
    cached by content hash (a stored object never changes); an unreadable header
    gives neither."""
    key = f"refset:series-view:{instance.sha256}"
    found = cache.get(key)
    if found is not None:
        return found
    try:
        ds = read_view_header(instance.file)
    except UnreadableHeader:  # missing or not DICOM: the thumbnail answers 422 for it
        return dict(NO_VIEW)
    out = shown(recorded_views(ds))
    cache.set(key, out, None)
    return out


def thumbnail_version(instance: Instance) -> str:
    """A short token naming the thumbnail's content (changes when the middle slice does)."""
    text = f"{THUMBNAIL_VERSION}|{instance.sha256}|{instance.frame}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def study_series(visible: models.QuerySet, case) -> list[dict[str, Any]]:
    """The image series of the case's study among `visible` (a Series queryset
    already filtered by `visible_to`), the case's own first, then by series
    description and UID; per series what the panel shows. `thumbnail_version` is
    None for a series without a servable image."""
    project_id = case.project_id
    rows = (
        visible.filter(study_id=case.series.study_id)
        .exclude(modality__in=NON_IMAGE_MODALITIES)
        .annotate(
            images=Count("instances", filter=~Q(instances__sha256__in=held_hashes(project_id)))
        )
        .select_related("study")
    )
    out = []
    for series in rows:
        middle = middle_instance(series) if series.images else None
        out.append(
            {
                **(view_of(middle) if middle else NO_VIEW),
                "id": series.pk,
                "series_uid": series.series_uid,
                "modality": series.modality,
                "description": series.description,
                "body_part": series.body_part,
                "images": series.images,
                "rows": series.rows,
                "columns": series.columns,
                "slice_thickness_mm": series.slice_thickness_mm,
                "slice_spacing_mm": series.slice_spacing_mm,
                "current": series.pk == case.series_id,
                "thumbnail_version": thumbnail_version(middle) if middle else None,
            }
        )
    out.sort(key=lambda s: (not s["current"], s["description"].lower(), s["series_uid"]))
    return out


@dataclass
class Thumbnail:
    png: bytes
    etag: str
    version: str
    stored: bool  # served from storage (built before) rather than built now


def thumbnail_etag(instance: Instance, size: int) -> str:
    return etag_for(THUMBNAIL_VERSION, instance.sha256, instance.frame, size)


def storage_key(etag: str) -> str:
    digest = hashlib.sha256(etag.encode()).hexdigest()
    return f"derived/thumbnails/{digest[:2]}/{digest}.png"


def render_thumbnail(instance: Instance, size: int) -> bytes:
    """PNG of one frame row with its default window, fitting size x size.
    Raises PixelError when the file is missing, unreadable or undecodable."""
    try:
        ds = load_dataset(instance.file)
    except pixels.PixelError:
        raise
    except Exception as exc:  # missing from storage, not DICOM, truncated
        message = _("Cannot read the stored file: %(error)s") % {"error": exc}
        raise pixels.PixelError(message, code="unreadable") from exc
    frame = pixels.decode_frame(ds, instance.frame)
    return pixels.render_png(ds, frame, size=size)


def thumbnail(instance: Instance, size: int = THUMBNAIL_SIZE) -> Thumbnail:
    """The series thumbnail for its middle frame row `instance`: from storage when
    built before, else rendered now and stored (a failed store is only logged)."""
    etag = thumbnail_etag(instance, size)
    key = storage_key(etag)
    version = thumbnail_version(instance)
    try:
        # Through this node's cache when the storage is remote (S3).
        with storage.open_cached(key) as handle:
            return Thumbnail(handle.read(), etag, version, True)
    except FileNotFoundError:
        pass
    except OSError:
        logger.warning("stored thumbnail %s unreadable; rebuilding", key)
    png = render_thumbnail(instance, size)
    try:
        storage.save_whole(key, ContentFile(png))  # a key taken meanwhile holds the same PNG
    except OSError:
        logger.warning("could not store thumbnail %s", key, exc_info=True)
    return Thumbnail(png, etag, version, False)
