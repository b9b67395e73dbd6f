"""A finding's measurements (qc.measurements) on its case's series.

Computed when a finding is saved with a new geometry (save_finding), stored in
Finding.measurements, returned by the findings API. The geometric part needs only
the series' spacing (one row, 1 ms); the values inside (HU) read the finding's own
slices through the storage API, never the whole series: a 7-slice nodule contour
on a 512 x 512 CT measured in 22 ms, of a 60 ms save (tests/reading/
test_measurements.py prints it; about 3 ms a slice). A save that keeps the
geometry (attributes only) keeps the stored measurements. `measure_missing`
measures findings saved before measurements existed (`manage.py
measure_findings`, in the datasets app, which knows which rows are frozen).

On CT the values are HU ("hu_mean", "hu_max", "hu_voxels"); other modalities get
no values (their pixel values have no unit a reader measures in). A file that
cannot be read leaves its slice out of the values, never fails the save.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db.models import QuerySet

from annotation_server.imaging import pixels
from annotation_server.imaging.delivery import ROW_FIELDS, series_records
from annotation_server.imaging.models import Series
from annotation_server.reading.models import Finding
from qc.measurements import Spacing, measure, values_inside
from qc.raster import AREA_KINDS

HU_MODALITIES = frozenset({"CT"})


def spacing_of(series: Series) -> Spacing:
    """Pixel spacing (row, column) and slice spacing; the slice spacing from the
    slices' positions when the header gave none; none for a single image."""
    pixel_mm = series.pixel_spacing_mm or []
    row_mm = col_mm = None
    if len(pixel_mm) == 2 and all(isinstance(v, int | float) and v > 0 for v in pixel_mm):
        row_mm, col_mm = float(pixel_mm[0]), float(pixel_mm[1])
    slice_mm = series.slice_spacing_mm if series.slice_spacing_mm else None
    if slice_mm is None:
        along = list(
            series.instances.exclude(position_along_normal=None)
            .order_by("slice_index")
            .values_list("position_along_normal", flat=True)[:200]
        )
        steps = np.abs(np.diff(np.asarray(along, dtype=float)))
        steps = steps[steps > 0]
        slice_mm = float(np.median(steps)) if steps.size else None
    return Spacing(row_mm, col_mm, slice_mm)


def _planes(series: Series, slice_indices: set[int]) -> dict[int, np.ndarray]:
    rows = list(
        series.instances.filter(slice_index__in=slice_indices)
        .order_by("slice_index", "frame")
        .values(*ROW_FIELDS)
    )
    out: dict[int, np.ndarray] = {}
    for record in series_records(rows):
        header, values = next(pixels.iter_records(record))
        if values is not None and not header.get("error") and values.ndim == 2:
            out.setdefault(int(header["slice_index"]), values)
    return out


def measure_finding(series: Series, geometry: dict) -> dict[str, Any] | None:
    """The finding's measurements, JSON-ready (None for marks without area)."""
    if geometry.get("kind") not in AREA_KINDS:
        return None
    out = measure(geometry, spacing_of(series))
    if out is None or series.modality not in HU_MODALITIES:
        return out
    wanted = {int(s["slice_index"]) for s in geometry.get("shapes", [])}
    planes = _planes(series, wanted)
    if not planes:
        return out
    size = next(iter(planes.values())).shape[:2]
    inside = values_inside(geometry, planes.get, size)
    if inside is not None:
        out.update(hu_mean=inside["mean"], hu_max=inside["max"], hu_voxels=inside["voxels"])
        out["units"]["hu"] = "HU"
    return out


def measure_missing(findings: QuerySet, progress=None) -> dict[str, int]:
    """Measure the findings of `findings` that have no measurements yet (saved
    before measurements existed, or imported): {"measured", "unmeasurable"}.

    Only outlines are tried (a point or a line has nothing to measure, and stays
    without, so a rerun tries nothing twice that it could measure). Each is
    written by a conditional UPDATE (`measurements` still null): a reader's save
    in the meantime wins, and a rerun finds nothing left to do. The UPDATE does
    not touch `updated_at` or the optimistic-lock `version`: measuring is not an
    edit. The caller leaves out rows it must not write (frozen ones).
    `progress(done, total)` is called after each finding."""
    todo = findings.filter(measurements__isnull=True, geometry__kind__in=sorted(AREA_KINDS))
    rows = list(todo.order_by("task__case__series_id", "pk").values_list("pk", "geometry"))
    series_of = dict(
        todo.values_list("pk", "task__case__series_id")  # one query, not one per finding
    )
    counts = {"measured": 0, "unmeasurable": 0}
    cache: dict[int, Series] = {}
    for done, (pk, geometry) in enumerate(rows, start=1):
        series_id = series_of.get(pk)
        series = cache.get(series_id)
        if series is None and series_id is not None:
            cache.clear()  # rows are in series order: keep one
            series = cache[series_id] = Series.objects.filter(pk=series_id).first()
        ok = series is not None and isinstance(geometry, dict)
        values = measure_finding(series, geometry) if ok else None
        if values is None:
            counts["unmeasurable"] += 1
        else:
            changed = Finding._base_manager.filter(pk=pk, measurements__isnull=True).update(
                measurements=values
            )
            counts["measured"] += changed
        if progress:
            progress(done, len(rows))
    return counts
