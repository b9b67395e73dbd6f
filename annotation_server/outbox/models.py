"""Write-back: where results go (Destination) and one row per outbound object
(OutboxItem).

A Destination names an existing PacsConnection rather than repeating its fields:
the address, transport (DICOMweb -> STOW-RS / QIDO-RS, DIMSE -> C-STORE /
C-FIND), the encrypted password or token and the operator's address allowlist
are kept and checked in one place, and a PACS RefSet pulls from is the same row
it writes back to. What the Destination adds is what only write-back needs: its
kind (the hospital PACS, which gets re-identified objects, or a research archive,
which gets them de-identified as they are) and the manager's mark that a hospital
destination is inside the hospital (who marked it, when).

An OutboxItem holds the de-identified object as built (`object_key` in the
storage, `sha256` of those bytes); a hospital item is re-identified when it is
sent, never stored with original identifiers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Destination(models.Model):
    class Kind(models.TextChoices):
        HOSPITAL = "hospital", _("hospital PACS (re-identified)")
        RESEARCH = "research", _("research archive (de-identified)")

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="writeback_destinations"
    )
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    connection = models.ForeignKey(
        "imaging.PacsConnection",
        on_delete=models.PROTECT,
        related_name="writeback_destinations",
        verbose_name=_("PACS connection"),
    )
    inside_hospital = models.BooleanField(
        _("inside the hospital"),
        default=False,
        help_text=_("A manager confirms the PACS is inside the hospital network."),
    )
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    marked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "name"]
        verbose_name = _("write-back destination")
        verbose_name_plural = _("write-back destinations")
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="destination_name_per_project")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def transport(self) -> str:
        from annotation_server.imaging.models import PacsConnection

        if self.connection.transport == PacsConnection.Transport.DIMSE:
            return OutboxItem.Transport.CSTORE
        return OutboxItem.Transport.STOW

    @property
    def reidentifies(self) -> bool:
        return self.kind == self.Kind.HOSPITAL


class OutboxItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        SENDING = "sending", _("sending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    class Transport(models.TextChoices):
        STOW = "stow", _("STOW-RS")
        CSTORE = "cstore", _("C-STORE")

    class Carries(models.TextChoices):
        REFERENCE_SEG = "reference_seg", _("reference standard (SEG)")
        REFERENCE_SR = "reference_sr", _("reference standard (SR)")
        READ_SEG = "read_seg", _("reader's read (SEG)")
        READ_SR = "read_sr", _("reader's read (SR)")
        MODEL_SEG = "model_seg", _("model proposals (SEG)")
        MODEL_SR = "model_sr", _("model proposals (SR)")
        IMAGE = "image", _("image")

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    destination = models.ForeignKey(Destination, on_delete=models.PROTECT, related_name="items")
    transport = models.CharField(_("transport"), max_length=8, choices=Transport.choices)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    # what it is
    sop_class_uid = models.CharField(_("SOP class UID"), max_length=64)
    sop_instance_uid = models.CharField(_("SOP instance UID"), max_length=64)
    study_uid = models.CharField(_("study UID (de-identified)"), max_length=64)
    series_uid = models.CharField(_("series UID"), max_length=64)
    sha256 = models.CharField(_("content hash"), max_length=64)
    object_key = models.CharField(_("stored object"), max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    # what it carries
    carries = models.CharField(_("carries"), max_length=16, choices=Carries.choices)
    case = models.ForeignKey(
        "projects.Case", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    reference_digest = models.CharField(_("reference revision"), max_length=64, blank=True)
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    # delivery
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("queued"), auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "pk"]
        verbose_name = _("outbox item")
        verbose_name_plural = _("outbox items")
        constraints = [
            # one row per object and destination: queuing the same revision again
            # adds nothing (a failed or cancelled row is queued again instead)
            models.UniqueConstraint(
                fields=["destination", "sop_instance_uid"], name="outbox_item_unique"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} -> {self.destination_id} ({self.status})"
