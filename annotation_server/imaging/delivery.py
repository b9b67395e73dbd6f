"""Pixel delivery helpers shared by the REST pixel endpoints, DICOMweb and the
jobs that pre-build series streams: strong ETags and conditional responses, the
series' frame rows, the frame-record stream of a series, and its stored copy.

Views call these; nothing here knows about requests beyond headers.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse, JsonResponse
from pydicom.dataset import Dataset

from annotation_server.imaging import pixels, storage, stream_cache
from annotation_server.imaging.models import Instance, Series

CACHE_CONTROL = "private, max-age=31536000, immutable"
ROW_FIELDS = (
    "id",
    "sop_instance_uid",
    "frame",
    "slice_index",
    "position",
    "position_along_normal",
    "file",
    "sha256",
)


def etag_for(*parts: Any) -> str:
    """A strong ETag from the content hash(es) and every parameter shaping the body."""
    text = "|".join(str(p) for p in (pixels.FORMAT_VERSION, *parts))
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:40] + '"'


def not_modified(request: HttpRequest, etag: str) -> HttpResponse | None:
    """A 304 when If-None-Match names `etag` (or *), else None."""
    header = request.headers.get("If-None-Match", "")
    tags = {t.strip().removeprefix("W/") for t in header.split(",") if t.strip()}
    if etag in tags or "*" in tags:
        response = HttpResponse(status=304)
        return cacheable(response, etag)
    return None


def cacheable(response: HttpResponse, etag: str) -> HttpResponse:
    response["ETag"] = etag
    response["Cache-Control"] = CACHE_CONTROL
    response["Vary"] = "Cookie, Authorization"
    return response


def pixel_error_response(error: pixels.PixelError) -> JsonResponse:
    return JsonResponse(error.as_dict(), status=422)


def load_dataset(key: str) -> Dataset:
    """Read one stored file through the storage API (no local path assumed)."""
    with storage.open_instance(key) as handle:
        return pixels.read_dataset(handle.read())


def placement(row: dict[str, Any]) -> dict[str, Any]:
    """Header fields that come from the index row rather than the file."""
    return {
        "instance": row["id"],
        "sop_instance_uid": row["sop_instance_uid"],
        "frame": row["frame"],
        "slice_index": row["slice_index"],
        "position": row["position"],
        "position_along_normal": row["position_along_normal"],
    }


def series_records(rows: list[dict[str, Any]], *, previews: bool = False) -> Iterator[bytes]:
    """Frame records of `rows` (index rows in slice order), reading each file once.
    With `previews` (the viewer's stream), a large first frame is preceded by its
    reduced rendition (`pixels.preview_record`)."""
    frames_of_file: dict[str, list[int]] = defaultdict(list)
    last_use: dict[str, int] = {}
    for i, row in enumerate(rows):
        frames_of_file[row["file"]].append(row["frame"])
        last_use[row["file"]] = i
    decoded: dict[str, tuple[Dataset, dict] | pixels.PixelError] = {}
    count = len(rows)
    for i, row in enumerate(rows):
        key = row["file"]
        extra = {**placement(row), "index": i, "count": count}
        if key not in decoded:
            try:
                ds = load_dataset(key)
                decoded[key] = (ds, pixels.stored_frames(ds, frames_of_file[key]))
            except pixels.PixelError as error:
                decoded[key] = error
            except Exception as exc:  # noqa: BLE001 - unreadable file: say so in-stream
                decoded[key] = pixels.PixelError(f"Cannot read the file: {exc}", code="unreadable")
        entry = decoded[key]
        if isinstance(entry, pixels.PixelError):
            yield pixels.error_record(entry, extra)
        else:
            ds, stored = entry
            try:
                frame = pixels.build_frame(ds, stored[row["frame"]], row["frame"])
                preview = pixels.preview_record(frame, extra) if previews and i == 0 else None
                if preview is not None:
                    yield preview
                yield frame.record(extra)
            except pixels.PixelError as error:
                yield pixels.error_record(error, extra)
        if last_use[key] == i:
            del decoded[key]


ETAG_FIELDS = ("id", "sha256", "frame", "slice_index", "position_along_normal")


def series_etag(series: Series) -> tuple[str, int]:
    """The strong ETag of the series' stream and its frame count, from the few
    columns it covers (tuples: a stored stream needs nothing else)."""
    rows = series.instances.order_by("slice_index", "frame").values_list(*ETAG_FIELDS)
    parts = [f"{i}:{sha}:{frame}:{index}:{along}" for i, sha, frame, index, along in rows]
    # "previews": the stream carries a large first frame's preview (series_records);
    # "rgb-previews": an RGB one too (streams stored before that are not reused).
    return etag_for("series", "previews", "rgb-previews", series.pk, *parts), len(parts)


def series_rows(series: Series) -> list[dict[str, Any]]:
    """The series' frame rows in slice order (what building its stream needs)."""
    return list(series.instances.order_by("slice_index", "frame").values(*ROW_FIELDS))


def series_rows_and_etag(series: Series) -> tuple[list[dict[str, Any]], str]:
    """The series' frame rows in slice order and the strong ETag of its stream."""
    return series_rows(series), series_etag(series)[0]


def build_series_stream(series: Series) -> bool:
    """Build and store the series stream now (False: it was already stored)."""
    rows, etag = series_rows_and_etag(series)
    key = stream_cache.key_for(etag)
    stored = stream_cache.open_stored(key)
    if stored is not None:
        stored.close()
        return False
    for _ in stream_cache.tee_to_storage(series_records(rows, previews=True), key):
        pass
    return True


def series_with_slices(series_id: int) -> Series:
    """The series for a viewer page: its detail (SeriesDetailSerializer) with the
    per-slice rows the viewer needs, in slice order, in two queries."""
    slices = Instance.objects.order_by("slice_index", "frame").only(
        "id", "series_id", "slice_index", "position", "position_along_normal", "frame"
    )
    return (
        Series.objects.filter(pk=series_id)
        .prefetch_related(Prefetch("instances", queryset=slices))
        .get()
    )


def series_volume(series: Series) -> dict[str, Any]:
    """The series' voxels and geometry, read through the storage API: modality
    values (rescaled) as float32 (slices, rows, columns) in slice order, the
    spacing (between slices, rows, columns; mm), the origin (the first slice's
    position) and the orientation. Missing spacing reads as 1 mm (and says so in
    `spacing_known`); frames that cannot be decoded raise PixelError."""
    rows = series_rows(series)
    if not rows:
        raise pixels.PixelError("The series has no images.", code="empty")
    planes: list[np.ndarray] = []
    for record in series_records(rows):
        header, values = next(pixels.iter_records(record))
        if header.get("error") or values is None:
            raise pixels.PixelError(str(header.get("error") or "undecodable frame"))
        planes.append(np.asarray(values, dtype=np.float32))
    volume = np.stack(planes)
    along = [r["position_along_normal"] for r in rows]
    slice_mm = series.slice_spacing_mm
    if not slice_mm and len(along) > 1 and None not in along:
        steps = np.diff(np.asarray(along, dtype=float))
        slice_mm = float(np.median(np.abs(steps))) if steps.size else None
    pixel_mm = series.pixel_spacing_mm or []
    known = bool(slice_mm) and len(pixel_mm) == 2 and all(float(v) > 0 for v in pixel_mm)
    spacing = (
        (float(slice_mm), float(pixel_mm[0]), float(pixel_mm[1])) if known else (1.0, 1.0, 1.0)
    )
    origin = rows[0]["position"] or [0.0, 0.0, 0.0]
    orientation = series.orientation or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return {
        "pixels": volume,
        "spacing": spacing,
        "spacing_known": known,
        "origin": tuple(float(v) for v in origin),
        "orientation": tuple(float(v) for v in orientation),
        "modality": series.modality,
        "series_uid": series.series_uid,
    }
