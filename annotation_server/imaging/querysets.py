"""Who may see which images: managers all of their projects', others those of
cases visible to them (CaseQuerySet.visible_to decides)."""

from __future__ import annotations

from django.db import models


class ImagingQuerySet(models.QuerySet):
    def visible_to(self, user):
        from annotation_server.projects.models import Case
        from annotation_server.projects.permissions import MANAGE, project_ids

        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        path = self.model.project_path
        series_ids = Case.objects.visible_to(user).values("series_id")
        visible = models.Q(**{f"{path}__in": project_ids(user, MANAGE)})
        if self.model._meta.model_name == "study":
            visible |= models.Q(series__id__in=series_ids)
            return self.filter(visible).distinct()
        if self.model._meta.model_name == "series":
            visible |= models.Q(id__in=series_ids)
        else:
            visible |= models.Q(series_id__in=series_ids)
        return self.filter(visible)
