"""Agreement reports of a project, cached until the reads under them change."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
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
    # Lesion matching between readers on 2-D photographs (fundus), per type:
    lesion_point_radius_px = models.FloatField(
        _("point lesions match within (pixels)"),
        default=10.0,
        validators=[MinValueValidator(0.1)],
        help_text=_("Microaneurysm points of two readers are one lesion when this close."),
    )
    lesion_region_rule = models.CharField(
        _("outlined lesions match by"),
        max_length=32,
        default="overlap_iou",
        choices=[
            ("overlap_iou", _("overlap (IoU of the outlines)")),
            ("centre_distance", _("centre distance (pixels)")),
        ],
    )
    lesion_region_threshold = models.FloatField(
        _("outlined lesions match threshold"),
        default=0.3,
        validators=[MinValueValidator(0.0)],
        help_text=_("The least IoU (0-1), or the most centre distance in pixels."),
    )
    updated_at = models.DateTimeField(auto_now=True)

    def clean(self) -> None:
        super().clean()
        if self.lesion_region_rule == "overlap_iou" and not 0 < self.lesion_region_threshold <= 1:
            raise ValidationError(
                {"lesion_region_threshold": _("An IoU threshold lies above 0 and at most 1.")}
            )
        if self.lesion_region_threshold <= 0:
            raise ValidationError(
                {"lesion_region_threshold": _("A distance threshold is above 0 pixels.")}
            )

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
