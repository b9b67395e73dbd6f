"""Reads: a reading task per case, reader and phase; its findings and case labels.

A qualification read is a ReadingTask with an `attempt`: that foreign key points
up to qualification.QualificationAttempt by string (the qualification app sits
above reading, which never imports it)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation_server.reading.querysets import (
    CaseProbabilityQuerySet,
    ProposalQuerySet,
    ReadingTaskQuerySet,
    ReadQuerySet,
)


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

    def is_overdue(self, now=None) -> bool:
        """Past its due date and not submitted (what the overdue reminder counts)."""
        return bool(self.due_at and self.due_at < (now or timezone.now()) and not self.is_locked)


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
    measurements = models.JSONField(
        _("measurements"),
        null=True,
        blank=True,
        help_text=_(
            "Computed from the geometry when it is saved: long and short axis, area, "
            "volume, HU inside (qc.measurements); units under 'units'."
        ),
    )
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
    proposal = models.ForeignKey(
        "reading.Proposal",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="findings",
        verbose_name=_("model proposal"),
        help_text=_("The model proposal this finding was accepted or edited from."),
    )
    model_name = models.CharField(_("model"), max_length=100, blank=True)
    model_version = models.CharField(_("model version"), max_length=50, blank=True)
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
    derived = models.JSONField(
        _("derived values"),
        default=dict,
        blank=True,
        help_text=_(
            "Computed on the server from the answers and findings (the schema's "
            "derived fields, e.g. referable DR, vertical cup-to-disc ratio)."
        ),
    )
    version = models.PositiveIntegerField(_("version"), default=1)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ReadQuerySet.as_manager()

    class Meta:
        verbose_name = _("case label")
        verbose_name_plural = _("case labels")

    def __str__(self) -> str:
        return f"labels of {self.task}"


# ------------------------------------------------------------------ model assistance


class AssistModelVersion(models.Model):
    """One version of an assist model that the app may run (assist_models/).

    Built-in models live in the code (assist_models.registry.BUILTIN_MODELS);
    plug-ins are TorchScript folders copied under REFSET_ASSIST_MODEL_DIR by
    `register_assist_model`. The card is the model card as registered."""

    class Source(models.TextChoices):
        BUILTIN = "builtin", _("built in")
        PLUGIN = "plugin", _("TorchScript plug-in")

    name = models.CharField(_("name"), max_length=100)
    version = models.CharField(_("version"), max_length=50)
    task = models.CharField(_("task"), max_length=32)
    card = models.JSONField(_("model card"), default=dict)
    weights_sha256 = models.CharField(_("weights sha256"), max_length=64)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    path = models.CharField(
        _("folder"),
        max_length=500,
        blank=True,
        help_text=_("A plug-in's folder (model.pt + config.json); empty for built-in models."),
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("registered by"),
    )
    registered_at = models.DateTimeField(_("registered"), auto_now_add=True)
    promoted = models.BooleanField(
        _("promoted"), default=False, help_text=_("The version run when none is named.")
    )

    class Meta:
        ordering = ["name", "-registered_at", "-id"]
        verbose_name = _("assist model version")
        verbose_name_plural = _("assist model versions")
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version", "weights_sha256"], name="assist_model_version_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class Proposal(models.Model):
    """A finding a model proposed on a case's series, for readers to accept, edit or
    reject. Re-running with another model version adds rows; old ones stay."""

    case = models.ForeignKey("projects.Case", on_delete=models.CASCADE, related_name="proposals")
    series = models.ForeignKey("imaging.Series", on_delete=models.CASCADE, related_name="proposals")
    model_version = models.ForeignKey(
        AssistModelVersion,
        on_delete=models.PROTECT,
        related_name="proposals",
        verbose_name=_("model version"),
    )
    finding_type = models.CharField(_("finding type"), max_length=48)
    geometry = models.JSONField(_("geometry"))
    centre_x_mm = models.FloatField(null=True, blank=True)
    centre_y_mm = models.FloatField(null=True, blank=True)
    centre_z_mm = models.FloatField(null=True, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    score = models.FloatField(_("confidence"))
    threshold = models.FloatField(_("threshold in force"), null=True, blank=True)
    current = models.BooleanField(
        _("current"),
        default=True,
        help_text=_("From the latest model run on the case; readers see current proposals only."),
    )
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProposalQuerySet.as_manager()

    class Meta:
        ordering = ["case", "-score", "id"]
        verbose_name = _("model proposal")
        verbose_name_plural = _("model proposals")
        indexes = [models.Index(fields=["case", "model_version"])]

    def __str__(self) -> str:
        return f"{self.finding_type} {self.score:.2f} by {self.model_version} on {self.case}"


class ProposalDisposition(models.Model):
    """What a reader did with one proposal in one read."""

    class Action(models.TextChoices):
        ACCEPTED = "accepted", _("accepted as is")
        EDITED = "edited", _("accepted after editing")
        REJECTED = "rejected", _("rejected")

    task = models.ForeignKey(
        ReadingTask, on_delete=models.CASCADE, related_name="proposal_dispositions"
    )
    proposal = models.ForeignKey(Proposal, on_delete=models.CASCADE, related_name="dispositions")
    action = models.CharField(_("action"), max_length=16, choices=Action.choices)
    finding = models.ForeignKey(
        Finding, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    dice = models.FloatField(_("Dice (proposal vs final)"), null=True, blank=True)
    hd95_mm = models.FloatField(_("HD95 (proposal vs final, mm)"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided"), auto_now_add=True)

    objects = ReadQuerySet.as_manager()

    class Meta:
        ordering = ["task", "decided_at", "id"]
        verbose_name = _("proposal disposition")
        verbose_name_plural = _("proposal dispositions")
        constraints = [
            models.UniqueConstraint(fields=["task", "proposal"], name="one_disposition_per_read"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.proposal_id} in {self.task}"


class CaseProbability(models.Model):
    """A model's case-level estimates for one case (e.g. a radiograph's exposure
    and positioning classes and which findings it shows), from one run. Re-runs add
    rows; readers see the current row under the same rules as proposals."""

    case = models.ForeignKey(
        "projects.Case", on_delete=models.CASCADE, related_name="case_probabilities"
    )
    series = models.ForeignKey("imaging.Series", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(
        AssistModelVersion,
        on_delete=models.PROTECT,
        related_name="case_probabilities",
        verbose_name=_("model version"),
    )
    probabilities = models.JSONField(_("probabilities"), default=dict)
    threshold = models.FloatField(_("threshold in force"), null=True, blank=True)
    current = models.BooleanField(_("current"), default=True)
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CaseProbabilityQuerySet.as_manager()

    class Meta:
        ordering = ["case", "-created_at", "-id"]
        verbose_name = _("case-level model estimate")
        verbose_name_plural = _("case-level model estimates")

    def __str__(self) -> str:
        return f"{self.model_version} on {self.case}"
