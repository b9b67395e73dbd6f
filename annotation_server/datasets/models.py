"""Frozen dataset versions: which cases, which split, which reference, with what hash."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

SEMVER = RegexValidator(r"^\d+\.\d+\.\d+$", _("Use MAJOR.MINOR.PATCH, e.g. 1.0.0."))


class FrozenError(Exception):
    """A frozen dataset version cannot change."""


class DatasetVersion(models.Model):
    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="dataset_versions"
    )
    version = models.CharField(_("version"), max_length=32, validators=[SEMVER])
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    title = models.CharField(_("title"), max_length=200, blank=True)
    notes = models.TextField(_("notes"), blank=True)
    frozen = models.BooleanField(_("frozen"), default=False)
    frozen_at = models.DateTimeField(_("frozen at"), null=True, blank=True)
    frozen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    manifest_sha256 = models.CharField(_("manifest hash"), max_length=64, blank=True)
    reference_snapshot = models.JSONField(
        _("reference standard at freeze"), default=dict, blank=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["project", "-created_at"]
        verbose_name = _("dataset version")
        verbose_name_plural = _("dataset versions")
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="dataset_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} v{self.version}"

    def save(self, *args, **kwargs):
        if self.pk and DatasetVersion.objects.filter(pk=self.pk, frozen=True).exists():
            raise FrozenError(f"Dataset version {self} is frozen; make a new version.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.frozen:
            raise FrozenError(f"Dataset version {self} is frozen and cannot be deleted.")
        return super().delete(*args, **kwargs)


class DatasetCase(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", _("train")
        VALIDATION = "validation", _("validation")
        TEST = "test", _("test (sequestered)")

    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="cases"
    )
    case = models.ForeignKey("projects.Case", on_delete=models.PROTECT, related_name="+")
    split = models.CharField(_("split"), max_length=16, choices=Split.choices)
    retired = models.BooleanField(_("retired"), default=False)
    retired_reason = models.CharField(_("retired because"), max_length=200, blank=True)

    class Meta:
        ordering = ["dataset_version", "case"]
        verbose_name = _("dataset case")
        verbose_name_plural = _("dataset cases")
        constraints = [
            models.UniqueConstraint(fields=["dataset_version", "case"], name="dataset_case_unique")
        ]

    def __str__(self) -> str:
        return f"{self.dataset_version}: {self.case} ({self.split})"

    def save(self, *args, **kwargs):
        if DatasetVersion.objects.filter(pk=self.dataset_version_id, frozen=True).exists():
            raise FrozenError("Cases of a frozen dataset version cannot change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if DatasetVersion.objects.filter(pk=self.dataset_version_id, frozen=True).exists():
            raise FrozenError("Cases of a frozen dataset version cannot change.")
        return super().delete(*args, **kwargs)
