"""Projects, their label schema and reading protocol, membership, and cases."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from annotation_server.accounts.models import Role
from annotation_server.projects import arms
from annotation_server.projects import schema as schema_rules
from annotation_server.projects.querysets import CaseQuerySet, ProjectQuerySet


class SchemaLockedError(Exception):
    """A label schema that reads already use cannot change: make a new version."""


class LabelSchema(models.Model):
    """A versioned label definition (see projects/schema.py for its format)."""

    key = models.SlugField(_("key"), max_length=64)
    version = models.PositiveIntegerField(_("version"), default=1)
    name = models.CharField(_("name"), max_length=200)
    definition = models.JSONField(_("definition"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["key", "-version"]
        verbose_name = _("label schema")
        verbose_name_plural = _("label schemas")
        constraints = [
            models.UniqueConstraint(fields=["key", "version"], name="labelschema_key_version")
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def clean(self):
        try:
            schema_rules.validate_definition(self.definition)
        except schema_rules.SchemaError as exc:
            raise ValidationError({"definition": exc.errors}) from None

    def save(self, *args, **kwargs):
        schema_rules.validate_definition(self.definition)
        if self.pk:
            stored = LabelSchema.objects.filter(pk=self.pk).values("definition", "key").first()
            changed = stored and (
                stored["definition"] != self.definition or stored["key"] != self.key
            )
            if changed and self.in_use:
                raise SchemaLockedError(
                    f"Label schema {self} is used by existing reads; create a new version instead."
                )
        super().save(*args, **kwargs)

    @property
    def in_use(self) -> bool:
        """True once any read of any project using this schema exists."""
        return self.projects.filter(cases__reading_tasks__isnull=False).exists()


class Project(models.Model):
    class TaskType(models.TextChoices):
        DETECTION_3D = "detection_3d", _("3D lesion detection and segmentation")
        CLASSIFICATION_2D = "classification_2d", _("2D image classification with localisation")
        SEGMENTATION_3D = "segmentation_3d", _("3D organ or lesion segmentation")

    class Status(models.TextChoices):
        SETUP = "setup", _("setting up")
        ACTIVE = "active", _("active")
        PAUSED = "paused", _("paused")
        CLOSED = "closed", _("closed")

    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    task_type = models.CharField(_("task type"), max_length=32, choices=TaskType.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.SETUP
    )
    modality = models.CharField(
        _("modality"), max_length=16, help_text=_("DICOM modality codes, comma-separated, e.g. CT")
    )
    body_part = models.CharField(
        _("body part"),
        max_length=64,
        blank=True,
        help_text=_("e.g. CHEST, ABDOMEN, HEAD: image QC uses this body part's defaults."),
    )
    sites = models.ManyToManyField(
        "accounts.Site",
        blank=True,
        related_name="projects",
        verbose_name=_("sites"),
        help_text=_("Institutions that contribute images or readers to this project."),
    )
    label_schema = models.ForeignKey(
        LabelSchema, on_delete=models.PROTECT, related_name="projects", verbose_name=_("schema")
    )
    qc_profile = models.JSONField(
        _("QC profile"),
        default=dict,
        blank=True,
        help_text=_(
            'Image QC thresholds, e.g. {"base": "CT", "max_slice_thickness_mm": 1.25}; '
            "empty: the modality's defaults."
        ),
    )
    qc_profile_version = models.PositiveIntegerField(
        _("QC profile version"), default=1, editable=False
    )
    deid_clean_descriptors = models.BooleanField(
        _("de-identification: clean descriptors"),
        default=True,
        help_text=_("PS3.15 Clean Descriptors Option: free-text descriptions are cleaned."),
    )
    deid_shift_dates = models.BooleanField(
        _("de-identification: keep shifted dates"),
        default=True,
        help_text=_(
            "PS3.15 Retain Longitudinal Temporal Information, Modified Dates: dates are "
            "shifted by a per-patient offset instead of removed."
        ),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        permissions = [
            ("manage_project", "Can manage the project (import, assign, QC, export)"),
            ("read_cases", "Can read assigned cases"),
            ("arbitrate_cases", "Can arbitrate disputed cases"),
            ("administer_project", "Can change roles and protocol"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.pk:
            stored = Project.objects.filter(pk=self.pk).values_list("qc_profile", flat=True).first()
            if stored is not None and stored != self.qc_profile:
                self.qc_profile_version += 1  # every report records the version it used
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = {*kwargs["update_fields"], "qc_profile_version"}
        super().save(*args, **kwargs)

    @property
    def modalities(self) -> list[str]:
        return [m.strip().upper() for m in self.modality.split(",") if m.strip()]


class ReadingProtocol(models.Model):
    """How a project's cases are read, matched, settled and arbitrated."""

    class MatchRule(models.TextChoices):
        CENTRE_DISTANCE = "centre_distance", _("centre distance ≤ threshold (mm)")
        CENTRE_IN_CONTOUR = "centre_in_contour", _("centre inside the other's contour")
        DISTANCE_OR_INSIDE = "distance_or_inside", _("centre distance ≤ threshold or inside")
        OVERLAP_DICE = "overlap_dice", _("Dice overlap ≥ threshold")
        OVERLAP_IOU = "overlap_iou", _("IoU overlap ≥ threshold")
        PYLIDC = (
            "pylidc",
            _("LIDC (pylidc): nearest contour points within the slice thickness, tightened ×0.9"),
        )

    class ConsensusMethod(models.TextChoices):
        # qc/consensus.py METHODS
        MAJORITY = "majority", _("majority vote (more than half of the readers' contours)")
        STAPLE = "staple", _("STAPLE (estimated truth from the readers' contours)")

    class ArbitrationMode(models.TextChoices):
        SINGLE = "single", _("one arbitrator")
        TWO_BLIND_TIEBREAK = "two_blind_tiebreak", _("two blind arbitrators, a third breaks ties")

    class GradeRule(models.TextChoices):
        # adjudication settling: qc/grading.py
        DIFFERENCE = "difference", _("arbitrate when grades differ by at least N")
        REFERABLE = "referable", _("arbitrate only when referable/non-referable differs")

    class WritebackReads(models.TextChoices):
        # what "send a case" writes back (annotation_server/outbox)
        REFERENCE = "reference", _("the reference standard only")
        READS = "reads", _("the reference standard and each reader's submitted read")
        MODEL = "model", _("the reference, each submitted read and the model's proposals")

    class PrelabelVisibility(models.TextChoices):
        HIDDEN = "hidden", _("never shown to readers")
        SHOWN = "shown", _("shown from the first phase on, as proposals to accept, edit or reject")
        REVIEW = "review", _("shown in the review phase only")

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="protocol", verbose_name=_("project")
    )
    readers_per_case = models.PositiveSmallIntegerField(
        _("readers per case"), default=3, validators=[MinValueValidator(1), MaxValueValidator(12)]
    )
    review_phase = models.BooleanField(
        _("unblinded review phase"),
        default=False,
        help_text=_("LIDC style: after the blind reads, readers see others' marks anonymised."),
    )
    blind = models.BooleanField(_("blind first phase"), default=True)
    exclude_own_site = models.BooleanField(_("no reads of own site's cases"), default=False)
    match_rule = models.CharField(
        _("match rule"), max_length=32, choices=MatchRule.choices, default=MatchRule.CENTRE_DISTANCE
    )
    match_threshold = models.FloatField(
        _("match threshold"),
        default=5.0,
        validators=[MinValueValidator(0.0)],
        help_text=_("mm for distance rules; 0–1 for overlap rules."),
    )
    auto_accept_min_readers = models.PositiveSmallIntegerField(
        _("auto-accept when marked by at least"),
        null=True,
        blank=True,
        help_text=_("Empty: every cluster goes to arbitration."),
    )
    auto_accept_same_type = models.BooleanField(_("auto-accept needs the same type"), default=True)
    auto_accept_ordinal_tolerance = models.PositiveSmallIntegerField(
        _("ordinal scores may differ by"), default=1
    )
    drop_below_readers = models.PositiveSmallIntegerField(
        _("drop clusters marked by fewer than"), default=0
    )
    size_tolerance_mm = models.FloatField(
        _("sizes may differ by (mm)"),
        null=True,
        blank=True,
        default=3.0,
        validators=[MinValueValidator(0.0)],
        help_text=_(
            "Readers' sizes of one finding may differ by this much before the size alone "
            "sends it to arbitration. Empty: sizes are not compared."
        ),
    )
    consensus_method = models.CharField(
        _("consensus rule for contours"),
        max_length=16,
        choices=ConsensusMethod.choices,
        default=ConsensusMethod.MAJORITY,
        help_text=_(
            "How the readers' contours of one finding are merged into the reference "
            "contour, when settling and in arbitration."
        ),
    )
    grade_rule = models.CharField(
        _("case-level grades go to arbitration"),
        max_length=16,
        choices=GradeRule.choices,
        default=GradeRule.DIFFERENCE,
        help_text=_(
            "For ordinal case-level grades (e.g. the diabetic retinopathy grade). "
            "Ungradable against a grade always goes to arbitration."
        ),
    )
    grade_difference = models.PositiveSmallIntegerField(
        _("grades differing by at least"),
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text=_("N for the rule above: 1 sends every difference to arbitration."),
    )
    arbitration_mode = models.CharField(
        _("arbitration mode"),
        max_length=32,
        choices=ArbitrationMode.choices,
        default=ArbitrationMode.SINGLE,
    )
    prelabel_visibility = models.CharField(
        _("model pre-labels"),
        max_length=16,
        choices=PrelabelVisibility.choices,
        default=PrelabelVisibility.HIDDEN,
    )
    prelabel_min_confidence = models.FloatField(
        _("lowest model confidence shown"),
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("Readers see no proposal whose confidence lies below this (0–1)."),
    )
    unassisted_fraction = models.FloatField(
        _("fraction of cases read without proposals"),
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_(
            "The no-assistance arm: this share of cases (0–1), drawn with the seed below, "
            "is read without model proposals, so the effect of assistance can be measured."
        ),
    )
    unassisted_seed = models.PositiveIntegerField(_("seed of the no-assistance arm"), default=0)
    reading_days = models.PositiveSmallIntegerField(_("days to read an assignment"), default=14)
    writeback_reads = models.CharField(
        _("write-back sends"),
        max_length=16,
        choices=WritebackReads.choices,
        default=WritebackReads.REFERENCE,
        help_text=_(
            "What sending a case to a PACS or archive writes back: readers appear under "
            "their pseudonymous observer codes, as in the export."
        ),
    )
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("reading protocol")
        verbose_name_plural = _("reading protocols")

    def __str__(self) -> str:
        return f"{self.project}: {self.readers_per_case} readers, {self.get_match_rule_display()}"

    @property
    def phases(self) -> list[int]:
        return [1, 2] if self.review_phase else [1]

    def proposals_shown_in(self, phase: int) -> bool:
        """Whether readers see model proposals in `phase` (1: first read, 2: review)."""
        if self.prelabel_visibility == self.PrelabelVisibility.SHOWN:
            return True
        if self.prelabel_visibility == self.PrelabelVisibility.REVIEW:
            return phase == 2 and self.review_phase
        return False

    def case_unassisted(self, case_id: int) -> bool:
        """Whether the case is in the no-assistance arm (projects.arms)."""
        return arms.unassisted(case_id, self.unassisted_fraction, self.unassisted_seed)

    def clean(self):
        errors = {}
        overlap = self.match_rule in (self.MatchRule.OVERLAP_DICE, self.MatchRule.OVERLAP_IOU)
        if overlap and not 0 < self.match_threshold <= 1:
            errors["match_threshold"] = _("An overlap threshold lies between 0 and 1.")
        if not overlap and self.match_threshold <= 0:
            errors["match_threshold"] = _("A distance threshold must be positive (mm).")
        k = self.auto_accept_min_readers
        if k is not None and not 1 <= k <= self.readers_per_case:
            errors["auto_accept_min_readers"] = _("Must lie between 1 and the readers per case.")
        if self.drop_below_readers > self.readers_per_case:
            errors["drop_below_readers"] = _("Cannot exceed the readers per case.")
        if errors:
            raise ValidationError(errors)


class Membership(models.Model):
    """A role in a project. Saving grants the role's object permissions (guardian)."""

    project = models.ForeignKey(
        Project, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("project")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    qualified = models.BooleanField(
        _("qualified"), default=False, help_text=_("Passed the project's qualification test.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["project", "role", "user"]
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["project", "user", "role"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} — {self.get_role_display()} @ {self.project}"

    def save(self, *args, **kwargs):
        from annotation_server.projects.permissions import sync_object_permissions

        super().save(*args, **kwargs)
        sync_object_permissions(self.project, self.user)

    def delete(self, *args, **kwargs):
        from annotation_server.projects.permissions import sync_object_permissions

        project, user = self.project, self.user
        result = super().delete(*args, **kwargs)
        sync_object_permissions(project, user)
        return result


class Case(models.Model):
    """One series to be read in one project, moving through the life cycle."""

    class State(models.TextChoices):
        IMPORTED = "imported", _("imported")
        QC = "qc", _("quality control")
        READING = "reading", _("reading")
        ARBITRATION = "arbitration", _("arbitration")
        ADJUDICATED = "adjudicated", _("adjudicated")
        FROZEN = "frozen", _("frozen")

    class QcStatus(models.TextChoices):
        PENDING = "pending", _("pending")
        PASS = "pass", _("pass")
        WARN = "warn", _("warning")
        FAIL = "fail", _("fail")
        OVERRIDDEN = "overridden", _("fail, overridden by a manager")

    # Allowed transitions; services.transition() enforces them and audits each.
    TRANSITIONS: dict[str, tuple[str, ...]] = {
        State.IMPORTED: (State.QC,),
        State.QC: (State.READING,),
        State.READING: (State.ARBITRATION, State.ADJUDICATED, State.QC),
        State.ARBITRATION: (State.ADJUDICATED,),
        State.ADJUDICATED: (State.ARBITRATION, State.FROZEN),
        State.FROZEN: (State.ARBITRATION,),
    }

    project = models.ForeignKey(
        Project, on_delete=models.PROTECT, related_name="cases", verbose_name=_("project")
    )
    code = models.CharField(_("case id"), max_length=32)
    series = models.ForeignKey(
        "imaging.Series", on_delete=models.PROTECT, related_name="cases", verbose_name=_("series")
    )
    site = models.ForeignKey(
        "accounts.Site",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cases",
        verbose_name=_("site"),
    )
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.IMPORTED, db_index=True
    )
    qc_status = models.CharField(
        _("QC status"), max_length=16, choices=QcStatus.choices, default=QcStatus.PENDING
    )
    is_qualification = models.BooleanField(
        _("qualification case"),
        default=False,
        help_text=_("Part of the qualification set: never assigned as a real read."),
    )
    state_changed_at = models.DateTimeField(_("state changed"), auto_now_add=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    version = models.PositiveIntegerField(_("version"), default=1)

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["project", "code"]
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        constraints = [
            models.UniqueConstraint(fields=["project", "code"], name="case_code_unique"),
            models.UniqueConstraint(fields=["project", "series"], name="case_series_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}/{self.code}"

    def can_transition(self, to: str) -> bool:
        return to in self.TRANSITIONS.get(self.state, ())

    def clean(self):
        if self.series_id and self.project_id and self.series.study.project_id != self.project_id:
            raise ValidationError({"series": _("The series belongs to another project.")})
