"""Who sees which dataset versions and which of their cases.

Versions are the project managers' (and superusers'); everybody else sees none,
so every page and API answers 404 to them. The sequestered test split is hidden
even from managers unless they also hold `datasets.view_sequestered`: its cases
never appear in a list, a page, an API response or an export of theirs.
"""

from __future__ import annotations

from django.db import models

SEQUESTERED_PERM = "datasets.view_sequestered"
SEQUESTERED_SPLIT = "test"


def may_see_sequestered(user) -> bool:
    return bool(
        user.is_authenticated
        and user.is_active
        and (user.is_superuser or user.has_perm(SEQUESTERED_PERM))
    )


class DatasetVersionQuerySet(models.QuerySet):
    def visible_to(self, user):
        from annotation_server.projects.permissions import MANAGE, project_ids

        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        return self.filter(project_id__in=project_ids(user, MANAGE))


class DatasetCaseQuerySet(models.QuerySet):
    def visible_to(self, user):
        from annotation_server.projects.permissions import MANAGE, project_ids

        if not user.is_authenticated or not user.is_active:
            return self.none()
        rows = (
            self
            if user.is_superuser
            else self.filter(dataset_version__project_id__in=project_ids(user, MANAGE))
        )
        if not may_see_sequestered(user):
            rows = rows.exclude(split=SEQUESTERED_SPLIT)
        return rows
