"""De-identification (DICOM PS3.15 Annex E), pure Python: no Django, no database.

Public API::

    Deidentifier(secret, DeidOptions()).apply(ds) -> DeidResult(dataset, mappings, ...)
    burned_in_risk(ds) -> str | None
"""

from .engine import (
    Deidentifier,
    DeidError,
    DeidOptions,
    DeidResult,
    Mapping,
    burned_in_risk,
    is_valid_uid,
    keeps_uid,
)
from .profile import BASIC_PROFILE, PROFILE, REFSET_ADDITIONS, Rule, resolve_action

__all__ = [
    "BASIC_PROFILE",
    "PROFILE",
    "REFSET_ADDITIONS",
    "DeidError",
    "DeidOptions",
    "DeidResult",
    "Deidentifier",
    "Mapping",
    "Rule",
    "burned_in_risk",
    "is_valid_uid",
    "keeps_uid",
    "resolve_action",
]
