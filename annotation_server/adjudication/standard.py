"""The reference standard of a project's adjudicated cases, as plain data, for
apps below this one (registry.HOOKS "reading.reference_standard": the reading
app fine-tunes assist models on it without importing adjudication).

A case counts once it is adjudicated (or frozen into a dataset version), is not
a qualification case and has a series. Its findings are the current revisions
with status "included" (scored) or "excluded" (neither hit nor miss); rejected
ones are not findings. A case with none is a case without findings, which is
data too (every candidate on it is a negative).
"""

from __future__ import annotations

from typing import Any

from annotation_server.adjudication.marks import centre_of, grid_for_series
from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.projects.models import Case, Project

ADJUDICATED = (Case.State.ADJUDICATED, Case.State.FROZEN)


def adjudicated_findings(project: Project) -> dict[int, list[dict[str, Any]]]:
    """{case id: [{"finding_type", "centre_mm", "diameter_mm", "scored"}]} for the
    project's adjudicated cases, in case id order. A finding without a centre (no
    stored centre, no shape to take one from) is left out."""
    cases = list(
        Case.objects.filter(
            project=project, state__in=ADJUDICATED, is_qualification=False, series__isnull=False
        )
        .select_related("series")
        .order_by("pk")
    )
    rows = ReferenceFinding.objects.filter(
        case__in=cases,
        is_current=True,
        status__in=(ReferenceFinding.Status.INCLUDED, ReferenceFinding.Status.EXCLUDED),
    ).order_by("case_id", "ref_key")
    out: dict[int, list[dict[str, Any]]] = {case.pk: [] for case in cases}
    series = {case.pk: case.series for case in cases}
    grids: dict[int, Any] = {}
    for ref in rows:
        stored = (ref.centre_x_mm, ref.centre_y_mm, ref.centre_z_mm)
        grid = None
        if any(v is None for v in stored) and not (ref.geometry or {}).get("centre_mm"):
            if ref.case_id not in grids:
                grids[ref.case_id] = grid_for_series(series[ref.case_id])
            grid = grids[ref.case_id]
        centre = centre_of(ref.geometry, stored, grid)
        if centre is None:
            continue
        diameter = ref.diameter_mm
        if diameter is None:
            long_axis = (ref.attributes or {}).get("long_axis_mm")
            diameter = float(long_axis) if isinstance(long_axis, int | float) else None
        out[ref.case_id].append(
            {
                "finding_type": ref.finding_type,
                "centre_mm": [float(v) for v in centre],
                "diameter_mm": diameter,
                "scored": ref.status == ReferenceFinding.Status.INCLUDED,
            }
        )
    return out
