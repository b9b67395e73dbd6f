"""Finding geometry: structure checks and the patient-space centre.

A geometry is {"kind": K, "shapes": [SHAPE, ...], "centre_mm": [x, y, z] | null}
where each SHAPE is {"slice_index": i, "points": [[col, row], ...]} in image
pixel coordinates of that slice (a mask instead carries "mask_ref"). The number
of points depends on the kind: point 1, line 2, box 2 (corners), ellipse 2
(bounding-box corners), polyline >= 2, polygon and contour >= 3 (closed).
"""

from __future__ import annotations

import math
from typing import Any

from annotation_server.projects.schema import GEOMETRY_KINDS, SchemaError

_POINTS = {
    "point": (1, 1),
    "line": (2, 2),
    "box": (2, 2),
    "ellipse": (2, 2),
    "polyline": (2, 10_000),
    "polygon": (3, 10_000),
    "contour": (3, 10_000),
}
MAX_SHAPES = 2000


def validate_geometry(geometry: Any) -> str:
    """Raise SchemaError naming each problem; return the geometry's kind."""
    if not isinstance(geometry, dict):
        raise SchemaError(["geometry must be a JSON object"])
    errors: list[str] = []
    kind = geometry.get("kind")
    if kind not in GEOMETRY_KINDS:
        raise SchemaError([f"geometry kind {kind!r} is not one of {', '.join(GEOMETRY_KINDS)}"])
    shapes = geometry.get("shapes")
    if not isinstance(shapes, list) or not shapes:
        raise SchemaError(["geometry needs at least one shape"])
    if len(shapes) > MAX_SHAPES:
        errors.append(f"at most {MAX_SHAPES} shapes per finding")
    seen_slices = set()
    for i, shape in enumerate(shapes):
        where = f"shapes[{i}]"
        if not isinstance(shape, dict):
            errors.append(f"{where} must be an object")
            continue
        index = shape.get("slice_index")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            errors.append(f"{where}.slice_index must be a non-negative integer")
        elif index in seen_slices and kind != "point":
            errors.append(f"{where}: slice {index} has two shapes; one shape per slice")
        seen_slices.add(index)
        if kind == "mask":
            if not isinstance(shape.get("mask_ref"), str) or not shape["mask_ref"]:
                errors.append(f"{where}.mask_ref must name the stored mask")
            continue
        points = shape.get("points")
        lo, hi = _POINTS[kind]
        if not isinstance(points, list) or not lo <= len(points) <= hi:
            errors.append(f"{where}: a {kind} needs {lo}{'+' if hi > lo else ''} points")
            continue
        for p in points:
            if (
                not isinstance(p, list | tuple)
                or len(p) != 2
                or not all(
                    isinstance(v, int | float) and math.isfinite(v) and not isinstance(v, bool)
                    for v in p
                )
            ):
                errors.append(f"{where}: every point is [column, row] with finite numbers")
                break
    centre = geometry.get("centre_mm")
    if centre is not None and (
        not isinstance(centre, list | tuple)
        or len(centre) != 3
        or not all(isinstance(v, int | float) and math.isfinite(v) for v in centre)
    ):
        errors.append("centre_mm must be [x, y, z] in mm, or null")
    if errors:
        raise SchemaError(errors)
    return kind
