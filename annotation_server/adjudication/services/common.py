"""Constants, errors and the reference writers shared by settling and arbitration."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from annotation_server.adjudication.models import (
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
)

# The geometry written for auto-accepted clusters.
AUTO_CONSENSUS_METHOD = "majority"

ACTIONS = ("accept_reader", "accept_merged", "edit", "reject", "exclude")

# Fixed, translatable reason codes for arbitration decisions.
REASON_CODES: dict[str, Any] = {
    "existence_confirmed": _("existence confirmed on review (e.g. thin slices)"),
    "best_delineation": _("the chosen contour delineates the finding best"),
    "merged_delineation": _("the merged contour represents the readers best"),
    "attribute_corrected": _("attributes corrected on review"),
    "geometry_corrected": _("geometry corrected on review"),
    "not_a_finding": _("not a finding (e.g. vessel, scar, artefact)"),
    "below_size_limit": _("excluded: below the size limit (e.g. < 3 mm)"),
    "outside_scope": _("excluded: outside the dataset's scope"),
    "indeterminate": _("excluded: cannot be determined on these images"),
    "label_confirmed": _("case-level answer confirmed on review"),
    "other": _("other (explained in the text)"),
}


class SettleError(Exception):
    """The case cannot be settled now (reads missing, no grid for the rule...)."""


class ArbitrationError(Exception):
    """An arbitration step is not possible (no arbitrator, incomplete decisions...)."""


class SignatureError(PermissionDenied):
    """The password given to sign was wrong."""


# ---------------------------------------------------------------- settling


def shapes_for(geometry: dict):
    from annotation_server.adjudication.marks import shapes_of

    return shapes_of(geometry)


def reference_centre(geometry: dict, cluster: Cluster, grid) -> tuple:
    from annotation_server.adjudication.marks import centre_of

    centre = centre_of(geometry, (None, None, None), grid)
    if centre is None:
        return (cluster.centre_x_mm, cluster.centre_y_mm, cluster.centre_z_mm)
    return centre


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
        decision=decision,
        arbitration_task=task,
        decided_by=task.arbitrator if task else None,
        decided_at=when,
    )


# ---------------------------------------------------------------- re-arbitration
