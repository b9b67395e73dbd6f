"""Dataset versions: which cases, which split, which reference, frozen with what.

A version starts as a draft (a selection of adjudicated cases, drawn into
splits), and `services.freeze` turns it into a frozen version: every case gets
a JSON snapshot of everything it carries (reads of every phase, reference
revisions, arbitration log, QC reports), the version a snapshot of the
project's protocol, schema, roster and qualification results, and every live
row that went into it is listed in `FrozenRow`. From then on the database
refuses changes (triggers: migration 0004; see guards.py for the rules).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from annotation_server.datasets.querysets import DatasetCaseQuerySet, DatasetVersionQuerySet
from annotation_server.errors import DomainError

SEMVER_PATTERN = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$"
SEMVER = RegexValidator(SEMVER_PATTERN, _("Use MAJOR.MINOR.PATCH, e.g. 1.0.0."))


class FrozenError(DomainError):
    """A frozen dataset version, or a row that went into one, cannot change."""

    code = "version_frozen"


def frozen_message() -> str:
    return gettext(
        "This belongs to a frozen dataset version and is read-only; a correction is a new version."
    )


class DatasetVersion(models.Model):
    class Split(models.TextChoices):
        TRAIN = "train", _("train")
        VALIDATION = "validation", _("validation")
        TEST = "test", _("test (sequestered)")

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
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # How the cases were chosen and split (kept so a draft can be redrawn).
    selection = models.JSONField(_("selection"), default=dict, blank=True)
    seed = models.PositiveIntegerField(_("split seed"), default=1)
    split_ratios = models.JSONField(
        _("split ratios"), default=dict, blank=True, help_text=_("e.g. train 0.7, validation 0.15")
    )
    # Written once, at freeze.
    snapshot = models.JSONField(
        _("project snapshot at freeze"),
        default=dict,
        blank=True,
        help_text=_("Protocol, schema, roster, qualification results, QC and de-id profiles."),
    )
    changelog = models.JSONField(_("changes since the parent"), default=dict, blank=True)
    content_sha256 = models.CharField(_("content hash"), max_length=64, blank=True)
    manifest_sha256 = models.CharField(_("manifest hash"), max_length=64, blank=True)
    reference_snapshot = models.JSONField(
        _("reference standard at freeze"), default=dict, blank=True
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = DatasetVersionQuerySet.as_manager()

    class Meta:
        ordering = ["project", "-created_at"]
        verbose_name = _("dataset version")
        verbose_name_plural = _("dataset versions")
        constraints = [
            models.UniqueConstraint(fields=["project", "version"], name="dataset_version_unique")
        ]
        permissions = [
            (
                "view_sequestered",
                "Can see and export the sequestered test split of the projects they manage",
            )
        ]

    def __str__(self) -> str:
        return f"{self.project.slug} v{self.version}"

    @property
    def version_key(self) -> tuple[int, int, int]:
        return tuple(int(p) for p in self.version.split("."))  # type: ignore[return-value]

    def save(self, *args, **kwargs):
        if self.pk and DatasetVersion.objects.filter(pk=self.pk, frozen=True).exists():
            raise FrozenError(frozen_message())
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self.pk and DatasetVersion.objects.filter(pk=self.pk, frozen=True).exists():
            raise FrozenError(frozen_message())
        return super().delete(*args, **kwargs)


class DatasetCase(models.Model):
    """A case in a version: its split, whether it is retired, and (once frozen)
    the snapshot of everything it carried at that moment."""

    Split = DatasetVersion.Split

    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.CASCADE, related_name="cases"
    )
    case = models.ForeignKey("projects.Case", on_delete=models.PROTECT, related_name="+")
    case_code = models.CharField(_("case id"), max_length=32, default="")
    patient_pseudo_id = models.CharField(_("patient pseudonym"), max_length=64, blank=True)
    site_code = models.CharField(_("site"), max_length=16, blank=True)
    manufacturer = models.CharField(_("manufacturer"), max_length=64, blank=True)
    case_label = models.CharField(_("case label"), max_length=16, blank=True)
    split = models.CharField(_("split"), max_length=16, choices=Split.choices)
    retired = models.BooleanField(_("retired"), default=False)
    retired_reason = models.CharField(_("retired because"), max_length=200, blank=True)
    snapshot = models.JSONField(_("case snapshot at freeze"), default=dict, blank=True)
    reference_sha256 = models.CharField(_("reference hash"), max_length=64, blank=True)

    objects = DatasetCaseQuerySet.as_manager()

    class Meta:
        ordering = ["dataset_version", "case_code"]
        verbose_name = _("dataset case")
        verbose_name_plural = _("dataset cases")
        constraints = [
            models.UniqueConstraint(fields=["dataset_version", "case"], name="dataset_case_unique")
        ]

    def __str__(self) -> str:
        return f"{self.dataset_version}: {self.case_code} ({self.split})"

    def _frozen(self) -> bool:
        return DatasetVersion.objects.filter(pk=self.dataset_version_id, frozen=True).exists()

    def save(self, *args, **kwargs):
        if self._frozen():
            raise FrozenError(frozen_message())
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if self._frozen():
            raise FrozenError(frozen_message())
        return super().delete(*args, **kwargs)


class FrozenRow(models.Model):
    """A live row (a finding, a read, a reference revision...) that went into a
    frozen version. The triggers refuse UPDATE and DELETE of every listed row;
    written only by `services.freeze`, never changed afterwards."""

    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="frozen_rows"
    )
    table_name = models.CharField(max_length=63)
    row_id = models.BigIntegerField()

    class Meta:
        verbose_name = _("frozen row")
        verbose_name_plural = _("frozen rows")
        indexes = [models.Index(fields=["table_name", "row_id"], name="frozenrow_lookup")]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset_version", "table_name", "row_id"], name="frozenrow_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.table_name}#{self.row_id} in {self.dataset_version_id}"

    def save(self, *args, **kwargs):
        if self.pk:
            raise FrozenError(frozen_message())
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise FrozenError(frozen_message())


class Evaluation(models.Model):
    """One AI product's submission scored against a frozen version (the
    evaluation kit, qc/evaluation; workflow in evaluation_jobs.py).

    Every evaluation is kept: who asked, when, which version and split, which
    submission (stored content-addressed, with its SHA-256 and size) and the
    result, which records every convention. Once finished it is read-only:
    `save` and `delete` refuse, and the job writes its outcome with one
    conditional UPDATE from an unfinished state."""

    class Kind(models.TextChoices):
        DETECTION = "detection", _("detection")
        CLASSIFICATION = "classification", _("classification")
        SEGMENTATION = "segmentation", _("segmentation")
        DR_GRADING = "dr_grading", _("DR grading (fundus)")

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        REJECTED = "rejected", _("rejected")
        FAILED = "failed", _("failed")

    FINISHED = (Status.SUCCEEDED, Status.REJECTED, Status.FAILED)

    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="evaluations"
    )
    dataset_version = models.ForeignKey(
        DatasetVersion, on_delete=models.PROTECT, related_name="evaluations"
    )
    split = models.CharField(
        _("split"),
        max_length=16,
        blank=True,
        choices=[("", _("every split"))] + list(DatasetVersion.Split.choices),
    )
    product = models.CharField(_("product"), max_length=200, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    submission_name = models.CharField(_("submitted file"), max_length=255, blank=True)
    submission_key = models.CharField(_("stored submission"), max_length=255)
    submission_sha256 = models.CharField(_("submission SHA-256"), max_length=64)
    submission_bytes = models.BigIntegerField(_("submission size (bytes)"))
    operating_threshold = models.FloatField(_("operating threshold"), null=True, blank=True)
    rule = models.CharField(_("match rule"), max_length=32, blank=True)
    rule_threshold = models.FloatField(_("match threshold"), null=True, blank=True)
    job = models.ForeignKey(
        "jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    result = models.JSONField(_("result"), default=dict, blank=True)
    problems = models.JSONField(_("problems"), default=list, blank=True)
    report_key = models.CharField(_("stored HTML report"), max_length=255, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("evaluation")
        verbose_name_plural = _("evaluations")
        indexes = [
            models.Index(fields=["dataset_version", "-created_at"], name="evaluation_by_version")
        ]

    def __str__(self) -> str:
        return f"{self.dataset_version} evaluation #{self.pk} ({self.product or self.kind})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    def _stored_finished(self) -> bool:
        return bool(
            self.pk and Evaluation.objects.filter(pk=self.pk, status__in=self.FINISHED).exists()
        )

    def save(self, *args, **kwargs):
        if self._stored_finished():
            raise FrozenError(
                gettext("A finished evaluation is read-only; run a new evaluation instead.")
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise FrozenError(gettext("Evaluations are kept: they cannot be deleted."))
