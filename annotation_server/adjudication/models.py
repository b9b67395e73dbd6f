"""Arbitration and the reference standard.

A ReferenceFinding is never updated in place once decided: a re-decision writes
a new revision row with `supersedes` pointing at the old one, and flips
`is_current`. `ref_key` names the finding across its revisions.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation_server.adjudication.querysets import ArbitrationTaskQuerySet, CaseScopedQuerySet


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
    items = models.JSONField(
        _("items to decide"),
        default=dict,
        blank=True,
        help_text=_('{"clusters": [cluster ids], "labels": [case field keys]}'),
    )
    signature_hash = models.CharField(
        _("signed decisions (SHA-256)"), max_length=64, blank=True, editable=False
    )

    objects = ArbitrationTaskQuerySet.as_manager()

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

    @property
    def is_blind(self) -> bool:
        return self.role in (self.Role.FIRST, self.Role.SECOND)

    def is_overdue(self, now=None) -> bool:
        """Past its due date and not signed (what the overdue reminder counts)."""
        signed = self.state == self.State.SIGNED
        return bool(self.due_at and self.due_at < (now or timezone.now()) and not signed)


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
    measurements = models.JSONField(
        _("measurements"),
        null=True,
        blank=True,
        help_text=_(
            "Computed from the geometry when the revision is written, as a reader's "
            "finding gets them on save (long and short axis, volume, HU inside)."
        ),
    )
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

    objects = CaseScopedQuerySet.as_manager()

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


class Settlement(models.Model):
    """One run of the matching and auto-consensus rule on a case (one per round).

    Keeps the protocol as it was applied and the case-level label disputes, so
    the outcome can be explained later even if the protocol changes.
    """

    class Outcome(models.TextChoices):
        ADJUDICATED = "adjudicated", _("all settled automatically")
        ARBITRATION = "arbitration", _("sent to arbitration")

    case = models.ForeignKey("projects.Case", on_delete=models.PROTECT, related_name="settlements")
    round = models.PositiveSmallIntegerField(_("round"), default=1)
    phase = models.PositiveSmallIntegerField(_("phase settled"), default=1)
    protocol = models.JSONField(_("protocol applied"), default=dict)
    label_disputes = models.JSONField(_("case-level label disputes"), default=list, blank=True)
    label_consensus = models.JSONField(_("case-level labels agreed"), default=dict, blank=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    created_at = models.DateTimeField(_("settled"), auto_now_add=True)

    objects = CaseScopedQuerySet.as_manager()

    class Meta:
        ordering = ["case", "round"]
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")
        constraints = [
            models.UniqueConstraint(fields=["case", "round"], name="one_settlement_per_round")
        ]

    def __str__(self) -> str:
        return f"{self.case} · round {self.round} · {self.get_outcome_display()}"


class Cluster(models.Model):
    """Findings of one type from different reads that the match rule groups together."""

    class Verdict(models.TextChoices):
        ACCEPT = "accept", _("auto-accepted")
        DROP = "drop", _("dropped")
        DISPUTE = "dispute", _("disputed")

    settlement = models.ForeignKey(Settlement, on_delete=models.CASCADE, related_name="clusters")
    case = models.ForeignKey("projects.Case", on_delete=models.PROTECT, related_name="clusters")
    number = models.PositiveSmallIntegerField(_("number"), help_text=_("1..n within the case."))
    ref_key = models.UUIDField(
        _("reference id"),
        default=uuid.uuid4,
        help_text=_("The reference finding this cluster becomes, across revisions."),
    )
    finding_type = models.CharField(_("finding type"), max_length=48)
    findings = models.ManyToManyField(
        "reading.Finding", related_name="clusters", verbose_name=_("member findings")
    )
    readers = models.PositiveSmallIntegerField(_("readers who marked it"))
    centre_x_mm = models.FloatField(null=True, blank=True)
    centre_y_mm = models.FloatField(null=True, blank=True)
    centre_z_mm = models.FloatField(null=True, blank=True)
    match_rule = models.CharField(_("match rule"), max_length=32)
    match_threshold = models.FloatField(_("match threshold"))
    threshold_used = models.FloatField(_("threshold after tightening"))
    tightened_on = models.CharField(_("tightened on"), max_length=32, blank=True)
    verdict = models.CharField(_("verdict"), max_length=16, choices=Verdict.choices)
    reasons = models.JSONField(_("reasons"), default=list, blank=True)
    consensus_geometry = models.JSONField(_("consensus geometry"), null=True, blank=True)
    consensus_attributes = models.JSONField(_("consensus attributes"), default=dict, blank=True)
    diameter_mm = models.FloatField(_("consensus diameter (mm)"), null=True, blank=True)

    objects = CaseScopedQuerySet.as_manager()

    class Meta:
        ordering = ["case", "number"]
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")
        constraints = [
            models.UniqueConstraint(fields=["settlement", "number"], name="cluster_number"),
        ]

    def __str__(self) -> str:
        return f"{self.case} · C{self.number} {self.finding_type} ({self.verdict})"


class ReferenceLabels(models.Model):
    """The case-level answers of the reference standard; revisions, like findings."""

    case = models.ForeignKey(
        "projects.Case", on_delete=models.PROTECT, related_name="reference_labels"
    )
    revision = models.PositiveIntegerField(_("revision"), default=1)
    is_current = models.BooleanField(_("current"), default=True)
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    values = models.JSONField(_("answers"), default=dict, blank=True)
    provenance = models.JSONField(
        _("provenance"),
        default=dict,
        blank=True,
        help_text=_("Per field: decision, reason code and text."),
    )
    derived = models.JSONField(
        _("derived values"),
        default=dict,
        blank=True,
        help_text=_(
            "The schema's derived fields computed from these answers and the reference "
            "findings (e.g. referable DR, vertical cup-to-disc ratio)."
        ),
    )
    decision = models.CharField(
        _("decision"), max_length=16, choices=ReferenceFinding.Decision.choices
    )
    arbitration_task = models.ForeignKey(
        ArbitrationTask,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reference_labels",
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    decided_at = models.DateTimeField(_("decided"))

    objects = CaseScopedQuerySet.as_manager()

    class Meta:
        ordering = ["case", "revision"]
        verbose_name = _("reference case labels")
        verbose_name_plural = _("reference case labels")
        constraints = [
            models.UniqueConstraint(fields=["case", "revision"], name="reference_labels_revision"),
            models.UniqueConstraint(
                fields=["case"],
                condition=models.Q(is_current=True),
                name="one_current_reference_labels",
            ),
        ]

    def __str__(self) -> str:
        return f"labels of {self.case} r{self.revision}"
