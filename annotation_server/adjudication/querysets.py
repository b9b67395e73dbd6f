"""Who sees what of arbitration. Every adjudication response is built from these.

Managers see their projects' clusters, tasks and reference findings, except on
a case where they themselves hold an unsigned blind task. Arbitrators see their
own tasks and the clusters and reference findings of the cases they arbitrate;
a blind arbitrator never sees the other blind arbitrator's task (so never its
decisions). Readers see none of it: clusters carry other readers' findings.
"""

from __future__ import annotations

from django.db import models


def _blind_case_ids(user):
    from annotation_server.adjudication.models import ArbitrationTask

    return (
        ArbitrationTask.objects.filter(
            arbitrator=user, role__in=(ArbitrationTask.Role.FIRST, ArbitrationTask.Role.SECOND)
        )
        .exclude(state=ArbitrationTask.State.SIGNED)
        .values("case_id")
    )


def _arbitrated_case_ids(user):
    from annotation_server.adjudication.models import ArbitrationTask

    return ArbitrationTask.objects.filter(arbitrator=user).values("case_id")


def _managed(user, path: str) -> models.Q:
    from annotation_server.projects.permissions import MANAGE, project_ids

    return models.Q(**{f"{path}__in": project_ids(user, MANAGE)})


class ArbitrationTaskQuerySet(models.QuerySet):
    def visible_to(self, user):
        if not user.is_authenticated or not user.is_active:
            return self.none()
        own = models.Q(arbitrator=user)
        oversight = models.Q() if user.is_superuser else _managed(user, "case__project_id")
        blind = models.Q(case_id__in=_blind_case_ids(user))
        return self.filter(own | (oversight & ~blind))


class CaseScopedQuerySet(models.QuerySet):
    """For rows hanging off a case (clusters, reference findings and labels)."""

    def visible_to(self, user):
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        from annotation_server.projects.permissions import ARBITRATE, project_ids

        arbitrating = models.Q(
            case_id__in=_arbitrated_case_ids(user),
            case__project_id__in=project_ids(user, ARBITRATE),
        )
        return self.filter(_managed(user, "case__project_id") | arbitrating)
