"""Constants, errors and the geometry helpers shared by settling and arbitration
(the reference writers are in reference.py)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from annotation_server.adjudication.models import Cluster
from annotation_server.errors import DomainError

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
    "missed_by_readers": _("a finding no reader marked, found on review"),
    "other": _("other (explained in the text)"),
}


class SettleError(DomainError):
    """The case cannot be settled now (reads missing, no grid for the rule...)."""


class ArbitrationError(DomainError):
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
