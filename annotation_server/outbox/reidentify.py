"""Re-identifying an outbound object for the hospital PACS it came from.

Every UID in the object (at any depth: the referenced series and instances of a
SEG, the evidence and content-tree references of an SR, the study, the frame of
reference) that is one of the project's replacement UIDs is put back to the
original, read from the key store (imaging.IdentityMapping) through
imaging.ingest.keys.reveal, which checks imaging.view_identity_key and audits
each look-up with its reason. PatientID and PatientName go back to the originals
the same way, and StudyDate is shifted back when the import shifted dates. The
object's own UIDs (SOP instance, series, the builders' tracking and dimension
UIDs) are RefSet's and stay. The de-identification marks (Patient Identity
Removed, De-identification Method) are removed, since the object is no longer
de-identified.

Nothing re-identified is stored: the sender re-identifies the stored
de-identified object each time it sends it.
"""

from __future__ import annotations

import datetime as dt

import pydicom
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext as _

from annotation_server.imaging.ingest import keys
from annotation_server.imaging.models import IdentityMapping

UID_KINDS = (
    IdentityMapping.Kind.STUDY_UID,
    IdentityMapping.Kind.SERIES_UID,
    IdentityMapping.Kind.SOP_UID,
    IdentityMapping.Kind.OTHER_UID,
)
# UIDs that name a class or syntax, never an instance of this patient
_NOT_INSTANCE = {"SOPClassUID", "ReferencedSOPClassUID", "TransferSyntaxUID"}


class ReidentificationError(Exception):
    """An object cannot be re-identified (no key-store entry for its study)."""


def _ui_values(ds: pydicom.Dataset, found: set[str]) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _ui_values(item, found)
        elif elem.VR == "UI" and elem.keyword not in _NOT_INSTANCE and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            found.update(str(v) for v in values)


def _replace(ds: pydicom.Dataset, originals: dict[str, str]) -> int:
    changed = 0
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                changed += _replace(item, originals)
        elif elem.VR == "UI" and elem.keyword not in _NOT_INSTANCE and elem.value:
            if elem.VM > 1:
                new = [originals.get(str(v), str(v)) for v in elem.value]
                if new != [str(v) for v in elem.value]:
                    elem.value, changed = new, changed + 1
            elif str(elem.value) in originals:
                elem.value, changed = originals[str(elem.value)], changed + 1
    return changed


class Reidentifier:
    """Re-identifies objects of one project for `user`, revealing each key-store
    entry once (one audited look-up per identifier and sending attempt)."""

    def __init__(self, project, user, *, reason: str):
        if user is None or not user.has_perm("imaging.view_identity_key"):
            raise PermissionDenied(
                _(
                    "Sending to a hospital PACS needs the key-store permission "
                    "(original identifiers)."
                )
            )
        self.project = project
        self.user = user
        self.reason = reason
        self._revealed: dict[int, str] = {}

    def _reveal(self, mapping: IdentityMapping) -> str:
        if mapping.pk not in self._revealed:
            self._revealed[mapping.pk] = keys.reveal(self.user, mapping, reason=self.reason)
        return self._revealed[mapping.pk]

    def _one(self, kind: str, replacement: str) -> str | None:
        mapping = (
            IdentityMapping.objects.filter(project=self.project, kind=kind, replacement=replacement)
            .order_by("pk")
            .first()
        )
        return self._reveal(mapping) if mapping else None

    def apply(self, ds: pydicom.Dataset) -> pydicom.Dataset:
        """Re-identify `ds` in place (and return it)."""
        uids: set[str] = set()
        _ui_values(ds, uids)
        originals = {
            m.replacement: self._reveal(m)
            for m in IdentityMapping.objects.filter(
                project=self.project, kind__in=UID_KINDS, replacement__in=uids
            ).order_by("pk")
        }
        study = str(ds.get("StudyInstanceUID", ""))
        if study not in originals:
            raise ReidentificationError(
                _("The key store has no original study UID for this object (study %(uid)s).")
                % {"uid": study}
            )
        _replace(ds, originals)
        pseudonym = str(ds.get("PatientID", ""))
        patient_id = self._one(IdentityMapping.Kind.PATIENT_ID, pseudonym)
        if patient_id is not None:
            ds.PatientID = patient_id
            name = self._one(IdentityMapping.Kind.PATIENT_NAME, pseudonym)
            ds.PatientName = name if name is not None else ""
            self._unshift_dates(ds, patient_id or f"study:{ds.StudyInstanceUID}")
        ds.PatientIdentityRemoved = "NO"
        for keyword in ("DeidentificationMethod", "DeidentificationMethodCodeSequence"):
            if keyword in ds:
                delattr(ds, keyword)
        return ds

    def _unshift_dates(self, ds: pydicom.Dataset, patient_key: str) -> None:
        mapping = keys.mapping_of(self.project, IdentityMapping.Kind.DATE_SHIFT, patient_key)
        if mapping is None or not ds.get("StudyDate"):
            return
        days = int(mapping.replacement)  # the shift the import added
        try:
            shifted = dt.datetime.strptime(str(ds.StudyDate), "%Y%m%d").date()
        except ValueError:
            return
        ds.StudyDate = (shifted - dt.timedelta(days=days)).strftime("%Y%m%d")
