"""Who may see which images: managers all of their projects', others those of
cases visible to them (CaseQuerySet.visible_to decides) and the other image
series of those cases' studies.

Reference series. A case is one series, but a radiologist reads it next to the
rest of the study (the other reconstructions, the localizer). Whoever may see a
case (its readers, its arbitrators once it reaches them, its managers) may also
look at every other *image* series of the same study, read-only: the series
panel lists them and the pixel API streams them. Nothing of another study, and
no non-image series (SEG, SR, presentation states, key objects, RT structures:
these can carry someone's marks or the reference standard, which blinding keeps
from a reader). A series of the study that is itself another case stays only
pixels here: nothing about that case's reads comes with it. Quarantined files
have no Instance row at all (imaging.ingest.quarantine), so no rule here can
reach them.
"""

from __future__ import annotations

from django.db import models

# Modalities of series that are not images to look at (DICOM PS3.3 C.7.3.1.1.1):
# segmentations, structured reports, presentation states, key-object selections,
# RT objects, registrations, raw data, documents. Never a reference series.
NON_IMAGE_MODALITIES = (
    "SEG",
    "SR",
    "PR",
    "KO",
    "RTSTRUCT",
    "RTPLAN",
    "RTDOSE",
    "RTRECORD",
    "REG",
    "FID",
    "RWV",
    "RAW",
    "DOC",
    "AU",
    "ECG",
    "PLAN",
)


def case_and_reference_series(case_series_ids):
    """Series ids the holder of `case_series_ids` (a values("series_id") subquery of
    visible cases) may see: those series and the other image series of their
    studies (the reference series; see the module docstring)."""
    from annotation_server.imaging.models import Series

    studies = Series.objects.filter(id__in=case_series_ids).values("study_id")
    reference = models.Q(study_id__in=studies) & ~models.Q(modality__in=NON_IMAGE_MODALITIES)
    return Series.objects.filter(models.Q(id__in=case_series_ids) | reference).values("id")


class ImagingQuerySet(models.QuerySet):
    def visible_to(self, user):
        from annotation_server.projects.models import Case
        from annotation_server.projects.permissions import MANAGE, project_ids

        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        path = self.model.project_path
        series_ids = case_and_reference_series(Case.objects.visible_to(user).values("series_id"))
        visible = models.Q(**{f"{path}__in": project_ids(user, MANAGE)})
        if self.model._meta.model_name == "study":
            visible |= models.Q(series__id__in=series_ids)
            return self.filter(visible).distinct()
        if self.model._meta.model_name == "series":
            visible |= models.Q(id__in=series_ids)
        else:
            visible |= models.Q(series_id__in=series_ids)
        return self.filter(visible)
