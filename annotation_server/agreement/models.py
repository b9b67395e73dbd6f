"""Agreement reports of a project, cached until the reads under them change."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class AgreementSettings(models.Model):
    """What a project's manager sets for its agreement report."""

    project = models.OneToOneField(
        "projects.Project", on_delete=models.CASCADE, related_name="agreement_settings"
    )
    flag_below = models.FloatField(
        _("flag readers whose sensitivity is below"),
        default=0.8,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
    )
    replicates = models.PositiveIntegerField(
        _("bootstrap replicates"),
        default=1000,
        validators=[MinValueValidator(0), MaxValueValidator(5000)],
    )
    stratify_by = models.CharField(
        _("bootstrap stratified by"),
        max_length=32,
        blank=True,
        choices=[
            ("", _("not stratified")),
            ("site", _("site")),
            ("manufacturer", _("manufacturer")),
            ("thickness_band", _("slice-thickness band")),
        ],
    )
    nsd_tolerance_mm = models.FloatField(
        _("surface distance tolerance (mm)"), default=1.0, validators=[MinValueValidator(0.0)]
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("agreement settings")
        verbose_name_plural = _("agreement settings")

    def __str__(self) -> str:
        return f"agreement settings of {self.project}"


class AgreementReport(models.Model):
    """A computed report. `fingerprint` hashes every read, finding, case label and
    reference revision under it (and the settings): a report whose fingerprint
    no longer matches is stale and is computed anew."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="agreement_reports"
    )
    fingerprint = models.CharField(_("fingerprint"), max_length=64, db_index=True)
    scope = models.CharField(
        _("scope"), max_length=64, default="project", help_text=_("project, or a case-set hash")
    )
    report = models.JSONField(_("report"))
    seconds = models.FloatField(_("seconds to compute"), default=0.0)
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("computed"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("agreement report")
        verbose_name_plural = _("agreement reports")

    def __str__(self) -> str:
        return f"agreement of {self.project} at {self.created_at:%Y-%m-%d %H:%M}"
