"""Arbitration and the reference standard.

A ReferenceFinding is never updated in place once decided: a re-decision writes
a new revision row with `supersedes` pointing at the old one, and flips
`is_current`. `ref_key` names the finding across its revisions.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class ArbitrationTask(models.Model):
    class Role(models.TextChoices):
        SOLE = "sole", _("sole arbitrator")
        FIRST = "first", _("first blind arbitrator")
        SECOND = "second", _("second blind arbitrator")
        TIEBREAK = "tiebreak", _("tie-breaking arbitrator")

    class State(models.TextChoices):
        ASSIGNED = "assigned", _("assigned")
        IN_PROGRESS = "in_progress", _("in progress")
        SIGNED = "signed", _("signed")

    case = models.ForeignKey(
        "projects.Case", on_delete=models.PROTECT, related_name="arbitration_tasks"
    )
    arbitrator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="arbitration_tasks"
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.SOLE)
    round = models.PositiveSmallIntegerField(
        _("round"), default=1, help_text=_("Re-arbitration of a case opens a new round.")
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.ASSIGNED
    )
    decisions = models.JSONField(_("draft decisions"), default=dict, blank=True)
    assigned_at = models.DateTimeField(_("assigned"), auto_now_add=True)
    due_at = models.DateTimeField(_("due"), null=True, blank=True)
    signed_at = models.DateTimeField(_("signed"), null=True, blank=True)
    version = models.PositiveIntegerField(_("version"), default=1)

    class Meta:
        ordering = ["case", "round", "role"]
        verbose_name = _("arbitration task")
        verbose_name_plural = _("arbitration tasks")
        constraints = [
            models.UniqueConstraint(
                fields=["case", "round", "role"], name="one_arbitrator_per_role_and_round"
            )
        ]

    def __str__(self) -> str:
        return f"{self.case} · {self.get_role_display()} · round {self.round}"


class ReferenceFinding(models.Model):
    class Status(models.TextChoices):
        INCLUDED = "included", _("in the reference standard")
        EXCLUDED = "excluded", _("excluded from scoring")
        REJECTED = "rejected", _("rejected: not a finding")

    class Decision(models.TextChoices):
        AUTO_CONSENSUS = "auto_consensus", _("auto-consensus")
        ARBITRATED = "arbitrated", _("arbitrated")
        IMPORTED = "imported", _("imported reference (e.g. pathology)")

    case = models.ForeignKey(
        "projects.Case", on_delete=models.PROTECT, related_name="reference_findings"
    )
    ref_key = models.UUIDField(_("reference id"), default=uuid.uuid4, db_index=True)
    revision = models.PositiveIntegerField(_("revision"), default=1)
    is_current = models.BooleanField(_("current"), default=True)
    supersedes = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="superseded_by",
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.INCLUDED
    )
    finding_type = models.CharField(_("finding type"), max_length=48)
    geometry = models.JSONField(_("geometry"), null=True, blank=True)
    centre_x_mm = models.FloatField(null=True, blank=True)
    centre_y_mm = models.FloatField(null=True, blank=True)
    centre_z_mm = models.FloatField(null=True, blank=True)
    diameter_mm = models.FloatField(null=True, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    decision = models.CharField(_("decision"), max_length=16, choices=Decision.choices)
    supporting_findings = models.ManyToManyField(
        "reading.Finding", blank=True, related_name="reference_findings"
    )
    arbitration_task = models.ForeignKey(
        ArbitrationTask,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reference_findings",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("decided"))
    reason_code = models.CharField(_("reason code"), max_length=48, blank=True)
    reason_text = models.TextField(_("reason"), blank=True)
    match_rule = models.CharField(_("match rule used"), max_length=32, blank=True)
    match_threshold = models.FloatField(_("match threshold used"), null=True, blank=True)

    class Meta:
        ordering = ["case", "ref_key", "revision"]
        verbose_name = _("reference finding")
        verbose_name_plural = _("reference findings")
        constraints = [
            models.UniqueConstraint(fields=["ref_key", "revision"], name="reference_revision"),
            models.UniqueConstraint(
                fields=["ref_key"],
                condition=models.Q(is_current=True),
                name="one_current_revision",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.finding_type} {self.ref_key} r{self.revision} ({self.status})"
