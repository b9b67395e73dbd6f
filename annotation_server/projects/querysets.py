"""Querysets that know who may see what. Every view, API and export uses them."""

from __future__ import annotations

from django.db import models


class ProjectQuerySet(models.QuerySet):
    def visible_to(self, user):
        from annotation_server.projects.permissions import VIEW, project_ids

        return self.filter(id__in=project_ids(user, VIEW))


class CaseQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Managers: every case. Arbitrators: cases at or past arbitration.
        Readers: the cases they hold a reading task for. Nobody else: nothing."""
        from annotation_server.projects.permissions import ARBITRATE, MANAGE, READ, project_ids

        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        managed = project_ids(user, MANAGE)
        arbitrated = project_ids(user, ARBITRATE)
        visible = models.Q(project_id__in=managed)
        visible |= models.Q(
            project_id__in=arbitrated,
            state__in=("arbitration", "adjudicated", "frozen"),
            is_qualification=False,
        )
        # The reading tasks, through the reverse relation (reading sits above projects).
        reading_task = self.model._meta.get_field("reading_tasks").related_model
        own_task = reading_task.objects.filter(case=models.OuterRef("pk"), reader=user)
        visible |= models.Q(models.Exists(own_task), project_id__in=project_ids(user, READ))
        return self.filter(visible)
