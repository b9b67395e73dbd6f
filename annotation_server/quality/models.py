"""Image-QC reports of cases (the rules themselves are the framework-free qc/)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from annotation_server.projects.models import Case


class QcReport(models.Model):
    """The image-QC result of one series under the project's profile at the time."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="qc_reports")
    status = models.CharField(_("status"), max_length=8)
    profile_version = models.PositiveIntegerField(_("QC profile version"), default=1)
    profile = models.JSONField(_("profile used"))
    results = models.JSONField(_("rule results"))
    created_at = models.DateTimeField(_("checked"), auto_now_add=True)

    class Meta:
        db_table = "projects_qcreport"  # created by the projects app; kept when it moved here
        ordering = ["case", "-created_at"]
        verbose_name = _("QC report")
        verbose_name_plural = _("QC reports")

    def __str__(self) -> str:
        return f"QC {self.status} · {self.case}"

    def failing(self) -> list[dict]:
        return [r for r in self.results if r["status"] in ("fail", "warn")]


class CaseFlag(models.Model):
    """A visible flag on a case for its managers and readers: a QC failure found
    while the case was already being read, or a manager's withdrawal from reading.
    Flags are resolved, never deleted, so the history stays."""

    class Kind(models.TextChoices):
        QC_FAILED_IN_READING = "qc_failed_in_reading", _("failed QC while in reading")
        WITHDRAWN = "withdrawn", _("withdrawn from reading")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="flags")
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    reason = models.TextField(_("reason"), blank=True)
    data = models.JSONField(_("details"), default=dict, blank=True)
    raised_at = models.DateTimeField(_("raised"), auto_now_add=True)
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("raised by"),
    )
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("resolved by"),
    )
    resolution = models.TextField(_("resolution"), blank=True)

    class Meta:
        ordering = ["case", "-raised_at"]
        verbose_name = _("case flag")
        verbose_name_plural = _("case flags")
        constraints = [
            models.UniqueConstraint(
                fields=["case", "kind"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_flag_per_case_and_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.case} · {self.get_kind_display()}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
