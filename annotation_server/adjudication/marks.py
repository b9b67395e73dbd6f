"""Database rows to qc.matching's plain data: series grids and marks.

The matcher in qc/ knows nothing of Django; these functions are the only place
Finding, ReferenceFinding and Series rows are turned into `Grid` and `Mark`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from qc.matching import Grid, Mark


def _spacing(series) -> tuple[tuple[float, float], bool]:
    spacing = series.pixel_spacing_mm
    try:
        row, col = float(spacing[0]), float(spacing[1])
    except (TypeError, ValueError, IndexError):
        return (1.0, 1.0), False
    if not (row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col)):
        return (1.0, 1.0), False  # e.g. RG1's [0, 0]: measure in pixels
    return (row, col), True


def grid_for_series(series) -> Grid | None:
    """The series' voxel grid, or None when it has no images.

    Images without ImagePositionPatient (radiographs) get a grid in pixel
    units with `patient_space=False`, so 2D projects still match in the plane.
    """
    rows = list(
        series.instances.order_by("slice_index", "frame").values_list(
            "slice_index", "position", "rows", "columns"
        )
    )
    if not rows:
        return None
    spacing, spacing_known = _spacing(series)
    by_index: dict[int, list[float] | None] = {}
    for index, position, _, _ in rows:
        by_index.setdefault(index, position)
    count = max(by_index) + 1
    orientation = series.orientation
    positioned = all(
        isinstance(by_index.get(i), list | tuple) and len(by_index[i]) == 3 for i in range(count)
    )
    if positioned and isinstance(orientation, list | tuple) and len(orientation) == 6:
        return Grid(
            positions=tuple(tuple(float(v) for v in by_index[i]) for i in range(count)),
            row_cosine=tuple(float(v) for v in orientation[:3]),
            column_cosine=tuple(float(v) for v in orientation[3:]),
            pixel_spacing=spacing,
            rows=rows[0][2],
            columns=rows[0][3],
            patient_space=spacing_known,
            slice_thickness=series.slice_thickness_mm,
        )
    step = float(series.slice_spacing_mm or series.slice_thickness_mm or 1.0)
    return Grid(
        positions=tuple((0.0, 0.0, i * step) for i in range(count)),
        pixel_spacing=spacing,
        rows=rows[0][2],
        columns=rows[0][3],
        patient_space=False,
        slice_thickness=series.slice_thickness_mm,
    )


def shapes_of(geometry: dict | None) -> tuple[tuple[int, tuple[tuple[float, float], ...]], ...]:
    if not geometry or geometry.get("kind") in (None, "point", "mask"):
        return ()
    return tuple(
        (int(s["slice_index"]), tuple((float(p[0]), float(p[1])) for p in s["points"]))
        for s in geometry.get("shapes", [])
        if "points" in s
    )


def centre_of(
    geometry: dict | None, stored: tuple, grid: Grid | None
) -> tuple[float, float, float] | None:
    """The stored patient-space centre, else the shapes' centre mapped through the grid."""
    if all(v is not None for v in stored):
        return tuple(float(v) for v in stored)
    if geometry and geometry.get("centre_mm"):
        return tuple(float(v) for v in geometry["centre_mm"])
    if grid is None or not geometry:
        return None
    planes = [s for s in geometry.get("shapes", []) if s.get("points")]
    if not planes:
        return None
    cols = [sum(p[0] for p in s["points"]) / len(s["points"]) for s in planes]
    rows = [sum(p[1] for p in s["points"]) / len(s["points"]) for s in planes]
    index = sum(s["slice_index"] for s in planes) / len(planes)
    return grid.to_patient(index, sum(cols) / len(cols), sum(rows) / len(rows))


def mark_for_finding(finding, grid: Grid | None = None, reader: str | None = None) -> Mark:
    geometry = finding.geometry or {}
    return Mark(
        id=str(finding.uid),
        reader=reader if reader is not None else str(finding.task_id),
        finding_type=finding.finding_type,
        centre_mm=centre_of(
            geometry, (finding.centre_x_mm, finding.centre_y_mm, finding.centre_z_mm), grid
        ),
        kind=geometry.get("kind", "point"),
        shapes=shapes_of(geometry),
        attributes=dict(finding.attributes or {}),
    )


def marks_for_tasks(tasks: Iterable, grid: Grid | None = None) -> list[Mark]:
    """Every finding of the given reading tasks as a Mark (reader = str(task.pk))."""
    from annotation_server.reading.models import Finding

    ids = [t.pk if hasattr(t, "pk") else int(t) for t in tasks]
    findings = Finding.objects.filter(task_id__in=ids).order_by("task_id", "created_at", "id")
    return [mark_for_finding(f, grid) for f in findings]


def marks_for_reference(case, grid: Grid | None = None) -> list[Mark]:
    """The case's current reference findings that count for scoring (status included)."""
    from annotation_server.adjudication.models import ReferenceFinding

    rows = ReferenceFinding.objects.filter(
        case=case, is_current=True, status=ReferenceFinding.Status.INCLUDED
    ).order_by("ref_key")
    return [
        Mark(
            id=str(r.ref_key),
            reader="reference",
            finding_type=r.finding_type,
            centre_mm=centre_of(r.geometry, (r.centre_x_mm, r.centre_y_mm, r.centre_z_mm), grid),
            kind=(r.geometry or {}).get("kind", "point"),
            shapes=shapes_of(r.geometry),
            attributes=dict(r.attributes or {}),
        )
        for r in rows
    ]
