"""Blinding lives here. Every read-related response is built from these.

A reader sees their own reads. The only other reads a reader ever sees are the
submitted phase-1 reads of a case on which the protocol has an unblinded review
phase and the reader holds a phase-2 task. Managers and arbitrators see the
reads of their projects, except on a case they are themselves still reading.
"""

from __future__ import annotations

from django.db import models


class ReadingTaskQuerySet(models.QuerySet):
    def operational(self):
        """The reads that make the dataset: every reading task except the reads of
        qualification attempts (those only score a reader)."""
        return self.filter(attempt__isnull=True)

    def in_worklist_order(self):
        """In progress first, then assigned, then the rest; earliest due first."""
        from annotation_server.reading.models import ReadingTask

        return self.annotate(
            state_rank=models.Case(
                models.When(state=ReadingTask.State.IN_PROGRESS, then=0),
                models.When(state=ReadingTask.State.ASSIGNED, then=1),
                default=2,
            )
        ).order_by("state_rank", "due_at", "id")

    def visible_to(self, user):
        from annotation_server.projects.permissions import ARBITRATE, MANAGE, READ, project_ids
        from annotation_server.reading.models import ReadingTask

        if not user.is_authenticated or not user.is_active:
            return self.none()
        own = models.Q(reader=user)
        if user.is_superuser:
            oversight = models.Q()
        else:
            oversight = models.Q(case__project_id__in=project_ids(user, MANAGE)) | models.Q(
                case__project_id__in=project_ids(user, ARBITRATE),
                case__state__in=("arbitration", "adjudicated", "frozen"),
                case__is_qualification=False,
            )
        # A person still reading a case never sees the other reads of that case.
        still_reading = ReadingTask.objects.filter(
            case=models.OuterRef("case"), reader=user
        ).exclude(state=ReadingTask.State.SUBMITTED)
        in_review = ReadingTask.objects.operational().filter(
            case=models.OuterRef("case"), reader=user, phase=2
        )
        review = models.Q(
            models.Exists(in_review),
            phase=1,
            state=ReadingTask.State.SUBMITTED,
            attempt__isnull=True,
            case__project__protocol__review_phase=True,
            case__project_id__in=project_ids(user, READ),
        )
        return self.filter(own | (oversight & ~models.Q(models.Exists(still_reading))) | review)


class ReadQuerySet(models.QuerySet):
    """For rows hanging off a reading task (findings, case labels)."""

    def visible_to(self, user):
        from annotation_server.reading.models import ReadingTask

        return self.filter(task__in=ReadingTask.objects.visible_to(user).values("id"))


class ProposalQuerySet(models.QuerySet):
    """Model proposals. A reader sees a case's proposals only through a read of
    their own on it, only in a phase whose protocol shows proposals
    (ReadingProtocol.proposals_shown_in), only at or above the protocol's lowest
    confidence shown, and never on a case of the no-assistance arm
    (projects.arms); proposals never cross projects (each belongs to one case).
    Managers of a project see all its proposals (to run models and measure them)."""

    def _shown_for(self, tasks) -> models.Q:
        allowed = models.Q(pk__in=[])
        for task in tasks:
            protocol = getattr(task.case.project, "protocol", None)
            if protocol is None or not protocol.proposals_shown_in(task.phase):
                continue
            if protocol.case_unassisted(task.case_id):
                continue
            allowed |= models.Q(
                case_id=task.case_id, current=True, score__gte=protocol.prelabel_min_confidence
            )
        return allowed

    def for_task(self, task):
        """What the reader of `task` sees while reading it."""
        from annotation_server.projects.permissions import READ, has_project_perm

        if not has_project_perm(task.reader, task.case.project, READ):
            return self.none()
        return self.filter(self._shown_for([task]))

    def visible_to(self, user):
        from annotation_server.projects.permissions import MANAGE, READ, project_ids
        from annotation_server.reading.models import ReadingTask

        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        tasks = (
            ReadingTask.objects.filter(reader=user, case__project_id__in=project_ids(user, READ))
            .exclude(case__project__protocol__prelabel_visibility="hidden")
            .select_related("case__project__protocol")
        )
        oversight = models.Q(case__project_id__in=project_ids(user, MANAGE))
        return self.filter(oversight | self._shown_for(tasks))


class CaseProbabilityQuerySet(models.QuerySet):
    """A model's case-level estimates: a reader sees those of a case only through
    a read of their own on it, in a phase that shows proposals, never on a case of
    the no-assistance arm, and only the current run's; managers see all of their
    projects' (ProposalQuerySet's rules, without a confidence floor: these are
    probabilities of classes, not marks)."""

    def for_task(self, task):
        from annotation_server.projects.permissions import READ, has_project_perm

        protocol = getattr(task.case.project, "protocol", None)
        if (
            protocol is None
            or not protocol.proposals_shown_in(task.phase)
            or protocol.case_unassisted(task.case_id)
            or not has_project_perm(task.reader, task.case.project, READ)
        ):
            return self.none()
        return self.filter(case_id=task.case_id, current=True)

    def visible_to(self, user):
        from annotation_server.projects.permissions import MANAGE, project_ids

        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(case__project_id__in=project_ids(user, MANAGE))
