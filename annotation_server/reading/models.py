"""Reads: a reading task per case, reader and phase; its findings and case labels.

A qualification read is a ReadingTask with an `attempt`: that foreign key points
up to qualification.QualificationAttempt by string (the qualification app sits
above reading, which never imports it)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from annotation_server.reading.querysets import ReadingTaskQuerySet, ReadQuerySet


class ReadingTask(models.Model):
    """One reader's read of one case in one phase (1 = blind, 2 = unblinded review)."""

    class State(models.TextChoices):
        ASSIGNED = "assigned", _("assigned")
        IN_PROGRESS = "in_progress", _("in progress")
        SUBMITTED = "submitted", _("submitted")

    case = models.ForeignKey(
        "projects.Case", on_delete=models.PROTECT, related_name="reading_tasks"
    )
    reader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reading_tasks"
    )
    phase = models.PositiveSmallIntegerField(
        _("phase"), default=1, validators=[MinValueValidator(1), MaxValueValidator(2)]
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.ASSIGNED, db_index=True
    )
    attempt = models.ForeignKey(
        "qualification.QualificationAttempt",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="tasks",
        help_text=_("Set for qualification reads."),
    )
    assigned_at = models.DateTimeField(_("assigned"), auto_now_add=True)
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    active_seconds = models.PositiveIntegerField(_("time spent (s)"), default=0)
    last_heartbeat_at = models.DateTimeField(_("last reading-time report"), null=True, blank=True)
    version = models.PositiveIntegerField(_("version"), default=1)

    objects = ReadingTaskQuerySet.as_manager()

    class Meta:
        ordering = ["due_at", "id"]
        verbose_name = _("reading task")
        verbose_name_plural = _("reading tasks")
        constraints = [
            models.UniqueConstraint(
                fields=["case", "reader", "phase"],
                condition=models.Q(attempt__isnull=True),
                name="one_read_per_case_reader_phase",
            ),
            models.UniqueConstraint(
                fields=["attempt", "case"],
                condition=models.Q(attempt__isnull=False),
                name="one_read_per_attempt_case",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.case} · {self.reader} · phase {self.phase}"

    @property
    def is_locked(self) -> bool:
        return self.state == self.State.SUBMITTED


class Finding(models.Model):
    """A mark on a case by one read: type, geometry, attributes, origin."""

    class Source(models.TextChoices):
        MANUAL = "manual", _("drawn by the reader")
        MODEL_ACCEPTED = "model_accepted", _("model proposal accepted")
        MODEL_EDITED = "model_edited", _("model proposal edited")

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    task = models.ForeignKey(ReadingTask, on_delete=models.CASCADE, related_name="findings")
    finding_type = models.CharField(_("finding type"), max_length=48)
    geometry = models.JSONField(_("geometry"))
    centre_x_mm = models.FloatField(null=True, blank=True)
    centre_y_mm = models.FloatField(null=True, blank=True)
    centre_z_mm = models.FloatField(null=True, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    source = models.CharField(
        _("source"), max_length=16, choices=Source.choices, default=Source.MANUAL
    )
    derived_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="revisions",
        help_text=_("The phase-1 finding this review-phase finding revises."),
    )
    version = models.PositiveIntegerField(_("version"), default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReadQuerySet.as_manager()

    class Meta:
        ordering = ["task", "created_at", "id"]
        verbose_name = _("finding")
        verbose_name_plural = _("findings")

    def __str__(self) -> str:
        return f"{self.finding_type} in {self.task}"


class CaseLabel(models.Model):
    """A read's answers to the schema's case-level fields."""

    task = models.OneToOneField(ReadingTask, on_delete=models.CASCADE, related_name="case_label")
    values = models.JSONField(_("answers"), default=dict, blank=True)
    version = models.PositiveIntegerField(_("version"), default=1)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReadQuerySet.as_manager()

    class Meta:
        verbose_name = _("case label")
        verbose_name_plural = _("case labels")

    def __str__(self) -> str:
        return f"labels of {self.task}"
