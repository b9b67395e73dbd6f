"""Every write of the reference standard (ReferenceFinding, ReferenceLabels).

The reference is never updated in place: a new decision writes a new revision
that supersedes the current one (same `ref_key`), and the old row stays, no
longer current. Three writers, one per origin:

- `write_reference`: a cluster's finding, settled by auto-consensus or decided
  in arbitration (settle.py, arbitration.py);
- `write_added`: a finding no reader marked, added by a signing arbitrator;
- `write_labels`: the case-level answers, agreed or arbitrated;
- `replace_with_imported`: a case's whole reference given from outside the
  reads (the qualification app: a manager's JSON import, or a copy of an
  adjudicated case's reference).

Nothing else creates or changes these rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from annotation_server.adjudication.models import Cluster, ReferenceFinding, ReferenceLabels
from annotation_server.reading import derived as derived_fields
from annotation_server.reading.measurements import measure_finding


def _measured(case, geometry) -> dict | None:
    """Measurements of a reference outline, stored with its revision so a freeze
    copies them instead of reading pixels (None for marks without area)."""
    if not isinstance(geometry, dict):
        return None
    return measure_finding(case.series, geometry)


def write_reference(
    cluster: Cluster,
    *,
    status,
    decision,
    finding_type,
    geometry,
    attributes,
    diameter_mm,
    supporting,
    when,
    task=None,
    by=None,
    reason_code="",
    reason_text="",
    grid_centre=None,
) -> ReferenceFinding:
    """A new revision of the cluster's reference finding (the first, or superseding)."""
    current = (
        ReferenceFinding.objects.select_for_update()
        .filter(ref_key=cluster.ref_key, is_current=True)
        .first()
    )
    if current is not None:
        ReferenceFinding.objects.filter(pk=current.pk).update(is_current=False)
    centre = grid_centre or (cluster.centre_x_mm, cluster.centre_y_mm, cluster.centre_z_mm)
    ref = ReferenceFinding.objects.create(
        case=cluster.case,
        ref_key=cluster.ref_key,
        revision=(current.revision + 1) if current else 1,
        is_current=True,
        supersedes=current,
        status=status,
        finding_type=finding_type,
        geometry=geometry,
        centre_x_mm=centre[0],
        centre_y_mm=centre[1],
        centre_z_mm=centre[2],
        diameter_mm=diameter_mm,
        attributes=attributes,
        measurements=_measured(cluster.case, geometry),
        decision=decision,
        arbitration_task=task,
        decided_by=by,
        decided_at=when,
        reason_code=reason_code,
        reason_text=reason_text,
        match_rule=cluster.match_rule,
        match_threshold=cluster.match_threshold,
    )
    ref.supporting_findings.set(supporting)
    return ref


def write_added(
    case,
    *,
    key,
    finding_type,
    geometry,
    attributes,
    diameter_mm,
    centre,
    when,
    task,
    by,
    reason_code,
    reason_text,
    match_rule,
    match_threshold,
) -> ReferenceFinding:
    """A finding no reader marked, added by a signing arbitrator (no cluster, no
    supporting reads). `key` names it across revisions like a cluster's ref_key."""
    current = (
        ReferenceFinding.objects.select_for_update().filter(ref_key=key, is_current=True).first()
    )
    if current is not None:
        ReferenceFinding.objects.filter(pk=current.pk).update(is_current=False)
    centre = list(centre or (None, None, None)) + [None] * 3
    return ReferenceFinding.objects.create(
        case=case,
        ref_key=key,
        revision=(current.revision + 1) if current else 1,
        is_current=True,
        supersedes=current,
        status=ReferenceFinding.Status.INCLUDED,
        finding_type=finding_type,
        geometry=dict(geometry, added_by_arbitrator=True),
        centre_x_mm=centre[0],
        centre_y_mm=centre[1],
        centre_z_mm=centre[2],
        diameter_mm=diameter_mm,
        attributes=attributes,
        measurements=_measured(case, geometry),
        decision=ReferenceFinding.Decision.ARBITRATED,
        arbitration_task=task,
        decided_by=by,
        decided_at=when,
        reason_code=reason_code,
        reason_text=reason_text,
        match_rule=match_rule,
        match_threshold=match_threshold,
    )


def write_labels(case, values, provenance, decision, when, task=None) -> ReferenceLabels:
    current = ReferenceLabels.objects.select_for_update().filter(case=case, is_current=True).first()
    if current is not None:
        ReferenceLabels.objects.filter(pk=current.pk).update(is_current=False)
    return ReferenceLabels.objects.create(
        case=case,
        revision=(current.revision + 1) if current else 1,
        is_current=True,
        supersedes=current,
        values=values,
        provenance=provenance,
        derived=_derived(case, values),
        decision=decision,
        arbitration_task=task,
        decided_by=task.arbitrator if task else None,
        decided_at=when,
    )


def _derived(case, values) -> dict:
    """The schema's derived fields (referable DR, cup-to-disc ratio) of the
    reference answers, with the case's current included reference findings."""
    definition = case.project.label_schema.definition
    if not definition.get("derived"):
        return {}
    findings = (
        ReferenceFinding.objects.filter(
            case=case, is_current=True, status=ReferenceFinding.Status.INCLUDED
        )
        .order_by("ref_key", "revision")
        .values_list("finding_type", "geometry")
    )
    return derived_fields.compute(definition, values, [(t, g or {}) for t, g in findings])


def replace_with_imported(case, findings: Iterable[dict], *, by, when) -> tuple[int, int]:
    """Replace the case's reference with imported findings: each dict gives a
    ReferenceFinding's fields (finding_type, geometry, centre_x_mm/_y_mm/_z_mm,
    diameter_mm, attributes, reason_text; match_rule, match_threshold when
    copied). The case's current rows stay, no longer current. Returns (written,
    withdrawn). The caller validates first and audits."""
    rows = [
        ReferenceFinding(
            case=case,
            decision=ReferenceFinding.Decision.IMPORTED,
            decided_by=by,
            decided_at=when,
            **fields,
        )
        for fields in findings
    ]
    withdrawn = ReferenceFinding.objects.filter(case=case, is_current=True).update(is_current=False)
    ReferenceFinding.objects.bulk_create(rows)
    return len(rows), withdrawn
