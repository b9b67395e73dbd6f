"""Derived case-level fields: computed on the server from a read, never typed.

A schema's "derived" list names a rule per field (projects.schema.DERIVED_RULES);
each rule here takes the schema item, the read's case-level answers and its
findings' geometries, and returns the value (None when it cannot be computed,
e.g. no grade yet, or no disc outline). The results are stored with the read
(CaseLabel.derived) and with the reference standard's labels.

- referable_dr: True when the grade is >= the grade field's "referable_from"
  (2 on the international clinical DR scale: moderate NPDR or worse) or macular
  oedema is present; False when the grade is below that and oedema is absent;
  None when either is missing or ungradable (unless the other alone makes the
  case referable).
- vertical_cdr: the vertical extent (rows) of the optic cup outline divided by
  that of the optic disc outline, in image pixels of the same image, rounded
  to 3 decimals. Both outlines are closed polygons or ellipses (bounding-box
  corners); the first shape of each finding counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from annotation_server.projects.schema import outside_scale


def _grade_field(definition: dict, key: str) -> dict:
    return next((f for f in definition.get("case_fields", []) if f.get("key") == key), {})


def is_referable_grade(field: Mapping[str, Any], value: Any) -> bool | None:
    """True/False for a scale value against the field's referable_from; None for
    no answer or an answer outside the scale (ungradable)."""
    threshold = field.get("referable_from")
    if threshold is None or isinstance(value, bool) or not isinstance(value, int):
        return None
    return value >= threshold


def referable_dr(item: dict, definition: dict, values: Mapping, findings) -> bool | None:
    inputs = item.get("inputs", {})
    grade_key = inputs.get("grade", "dr_grade")
    oedema_key = inputs.get("oedema", "dmo")
    present = inputs.get("oedema_present", "present")
    field = _grade_field(definition, grade_key)
    by_grade = is_referable_grade(field, values.get(grade_key))
    oedema = values.get(oedema_key)
    by_oedema = (
        None if oedema in (None, "", *outside_scale(field), "ungradable") else (oedema == present)
    )
    if by_grade or by_oedema:
        return True
    if by_grade is False and by_oedema is False:
        return False
    return None


def vertical_extent(geometry: Mapping[str, Any]) -> float | None:
    """Rows spanned by a finding's first shape (polygon, contour or ellipse)."""
    shapes = geometry.get("shapes") or []
    points = shapes[0].get("points") if shapes and isinstance(shapes[0], dict) else None
    if not points:
        return None
    rows = [float(p[1]) for p in points]
    return max(rows) - min(rows)


def vertical_cdr(item: dict, definition: dict, values: Mapping, findings) -> float | None:
    inputs = item.get("inputs", {})
    by_type: dict[str, dict] = {}
    for finding_type, geometry in findings:
        by_type.setdefault(finding_type, geometry)
    disc = by_type.get(inputs.get("disc", "optic_disc"))
    cup = by_type.get(inputs.get("cup", "optic_cup"))
    if disc is None or cup is None:
        return None
    disc_h, cup_h = vertical_extent(disc), vertical_extent(cup)
    if not disc_h or cup_h is None:
        return None
    return round(cup_h / disc_h, 3)


RULES = {"referable_dr": referable_dr, "vertical_cdr": vertical_cdr}


def compute(
    definition: dict, values: Mapping[str, Any], findings: Iterable[tuple[str, dict]] = ()
) -> dict[str, Any]:
    """Every derived field of the schema for one read (or the reference labels):
    `findings` is (finding type, geometry) pairs. {} when the schema has none."""
    items = definition.get("derived", [])
    if not items:
        return {}
    findings = list(findings)
    return {item["key"]: RULES[item["rule"]](item, definition, values, findings) for item in items}


def for_read(task) -> dict[str, Any]:
    """compute() for a ReadingTask's current answers and findings."""
    definition = task.case.project.label_schema.definition
    if not definition.get("derived"):
        return {}
    from annotation_server.reading.models import CaseLabel

    label = CaseLabel.objects.filter(task=task).first()
    values = label.values if label is not None else {}
    findings = task.findings.order_by("created_at", "id").values_list("finding_type", "geometry")
    return compute(definition, values, findings)
