"""De-identified studies, series and instances.

Only pseudonymous identifiers are stored here: UIDs are the project's
replacement UIDs and the patient is a per-project pseudonym. The key back to
the originals lives apart (a later capability) and never in these tables.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from annotation_server.imaging.querysets import ImagingQuerySet


class Study(models.Model):
    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="studies"
    )
    study_uid = models.CharField(_("study instance UID"), max_length=64)
    patient_pseudo_id = models.CharField(_("patient pseudonym"), max_length=64, db_index=True)
    site = models.ForeignKey(
        "accounts.Site", on_delete=models.PROTECT, null=True, blank=True, related_name="studies"
    )
    study_date = models.DateField(_("study date (shifted)"), null=True, blank=True)
    patient_age_years = models.PositiveSmallIntegerField(_("patient age"), null=True, blank=True)
    patient_sex = models.CharField(_("patient sex"), max_length=1, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_at = models.DateTimeField(_("imported"), auto_now_add=True)

    objects = ImagingQuerySet.as_manager()
    project_path = "project_id"

    class Meta:
        ordering = ["project", "study_uid"]
        verbose_name = _("study")
        verbose_name_plural = _("studies")
        constraints = [
            models.UniqueConstraint(fields=["project", "study_uid"], name="study_uid_per_project")
        ]

    def __str__(self) -> str:
        return f"{self.patient_pseudo_id} {self.study_uid}"


class Series(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_uid = models.CharField(_("series instance UID"), max_length=64)
    modality = models.CharField(_("modality"), max_length=16)
    body_part = models.CharField(_("body part"), max_length=64, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    manufacturer = models.CharField(_("manufacturer"), max_length=64, blank=True)
    model_name = models.CharField(_("model"), max_length=64, blank=True)
    kernel = models.CharField(_("convolution kernel"), max_length=64, blank=True)
    kvp = models.FloatField(_("kVp"), null=True, blank=True)
    contrast = models.CharField(_("contrast agent"), max_length=64, blank=True)
    slice_thickness_mm = models.FloatField(_("slice thickness (mm)"), null=True, blank=True)
    slice_spacing_mm = models.FloatField(_("slice spacing (mm)"), null=True, blank=True)
    pixel_spacing_mm = models.JSONField(_("pixel spacing (row, column mm)"), null=True, blank=True)
    orientation = models.JSONField(_("image orientation (patient)"), null=True, blank=True)
    frame_of_reference_uid = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    num_instances = models.PositiveIntegerField(_("images"), default=0)
    created_at = models.DateTimeField(_("imported"), auto_now_add=True)

    objects = ImagingQuerySet.as_manager()
    project_path = "study__project_id"

    class Meta:
        ordering = ["study", "series_uid"]
        verbose_name = _("series")
        verbose_name_plural = _("series")
        constraints = [
            models.UniqueConstraint(fields=["study", "series_uid"], name="series_uid_per_study")
        ]

    def __str__(self) -> str:
        return f"{self.modality} {self.series_uid}"


class SourceFormat(models.TextChoices):
    """The file format an image arrived in (Instance.source_format)."""

    JPEG = "JPEG", "JPEG"
    PNG = "PNG", "PNG"
    TIFF = "TIFF", "TIFF"
    DICOM = "DICOM", "DICOM"


class Instance(models.Model):
    """One image (one frame of a multi-frame object is its own row)."""

    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField(_("SOP instance UID"), max_length=64)
    sop_class_uid = models.CharField(_("SOP class UID"), max_length=64)
    frame = models.PositiveIntegerField(_("frame"), default=0)
    instance_number = models.IntegerField(null=True, blank=True)
    slice_index = models.PositiveIntegerField(
        _("slice index"), default=0, help_text=_("Order along the slice normal, from 0.")
    )
    position = models.JSONField(_("image position (patient)"), null=True, blank=True)
    position_along_normal = models.FloatField(null=True, blank=True)
    rows = models.PositiveIntegerField()
    columns = models.PositiveIntegerField()
    rescale_slope = models.FloatField(default=1.0)
    rescale_intercept = models.FloatField(default=0.0)
    window_presets = models.JSONField(default=list, blank=True)
    photometric = models.CharField(max_length=16, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64, blank=True)
    sha256 = models.CharField(_("content hash"), max_length=64, db_index=True)
    file = models.CharField(_("storage key"), max_length=255)
    size_bytes = models.PositiveBigIntegerField(default=0)
    source_format = models.CharField(
        _("source format"),
        max_length=8,
        blank=True,
        choices=SourceFormat.choices,
        help_text=_(
            "The file format the image arrived in (a photograph's JPEG, PNG or TIFF file, "
            "or DICOM); empty for images imported before it was recorded."
        ),
    )
    laterality = models.CharField(
        _("laterality"),
        max_length=1,
        blank=True,
        help_text=_(
            "The object's ImageLaterality (else its series' Laterality): R, L, B or U; "
            "empty when it does not say."
        ),
    )
    # NULL, not "": imported before it was recorded (the series panel then reads the
    # header; manage.py backfill_instance_views fills it), so an image whose header
    # gives no view (a CT slice) is told apart from one never looked at.
    view_position = models.CharField(
        _("view position"),
        max_length=16,
        null=True,
        blank=True,
        help_text=_(
            "The radiograph's ViewPosition (PA, AP, LL...); empty when the header does "
            "not say, unset for images imported before it was recorded."
        ),
    )

    objects = ImagingQuerySet.as_manager()
    project_path = "series__study__project_id"

    class Meta:
        ordering = ["series", "slice_index", "frame"]
        verbose_name = _("instance")
        verbose_name_plural = _("instances")
        constraints = [
            models.UniqueConstraint(
                fields=["series", "sop_instance_uid", "frame"], name="instance_frame_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid}#{self.frame}"


class ProjectKey(models.Model):
    """A project's de-identification secret (drives UID, pseudonym and date-shift
    derivation), encrypted at rest with REFSET_KEY_ENCRYPTION_KEY."""

    project = models.OneToOneField(
        "projects.Project", on_delete=models.PROTECT, related_name="deid_key"
    )
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("de-identification key")
        verbose_name_plural = _("de-identification keys")

    def __str__(self) -> str:
        return f"key of {self.project}"


class IdentityMapping(models.Model):
    """Original identifier -> pseudonymous replacement. The original is encrypted;
    reading it needs the imaging.view_identity_key permission, and is audited."""

    class Kind(models.TextChoices):
        PATIENT_ID = "patient_id", _("patient ID")
        PATIENT_NAME = "patient_name", _("patient name")
        STUDY_UID = "study_uid", _("study UID")
        SERIES_UID = "series_uid", _("series UID")
        SOP_UID = "sop_uid", _("SOP instance UID")
        OTHER_UID = "other_uid", _("other UID")
        DATE_SHIFT = "date_shift", _("date shift (days)")
        VISIT_ID = "visit_id", _("visit ID (photograph manifest)")

    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="identity_mappings"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    original_digest = models.CharField(max_length=64, help_text=_("keyed hash for look-ups"))
    original_encrypted = models.TextField()
    replacement = models.CharField(_("replacement"), max_length=128, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("identity mapping")
        verbose_name_plural = _("identity mappings")
        permissions = [("view_identity_key", "Can read original identifiers (audited)")]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "kind", "original_digest"], name="identity_mapping_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.replacement}"


class Quarantine(models.Model):
    """A de-identified instance held back for a manager's review (burned-in text risk)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("awaiting review")
        RELEASED = "released", _("released into the project")
        REDACTED = "redacted", _("redacted, new instance released")
        REJECTED = "rejected", _("rejected")

    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="quarantine"
    )
    reason = models.CharField(_("reason"), max_length=200)
    sop_instance_uid = models.CharField(max_length=64)
    series_uid = models.CharField(max_length=64)
    modality = models.CharField(max_length=16, blank=True)
    sha256 = models.CharField(max_length=64)
    file = models.CharField(_("storage key"), max_length=255)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    text_boxes = models.JSONField(
        _("text found in the pixels"),
        null=True,
        blank=True,
        help_text=_("Boxes (x, y, width, height in pixels) the OCR suggests to redact."),
    )
    redacted_boxes = models.JSONField(_("redacted boxes"), null=True, blank=True)
    redacted_sop_instance_uid = models.CharField(
        _("SOP instance UID of the redacted copy"), max_length=64, blank=True
    )
    source_format = models.CharField(
        _("source format"),
        max_length=8,
        blank=True,
        choices=SourceFormat.choices,
        help_text=_("The file format the image arrived in; given to the instance on release."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("quarantined instance")
        verbose_name_plural = _("quarantined instances")
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="quarantine_unique")
        ]

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} ({self.reason})"


class GatewayPeer(models.Model):
    """What the two kinds of DICOM peer a manager keeps (a PACS RefSet queries, a
    sender that may C-STORE to it) have in common: the site their images count
    for, who added them and when."""

    site = models.ForeignKey(
        "accounts.Site",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("site"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class PacsConnection(GatewayPeer):
    """A hospital PACS reachable over DICOMweb (QIDO-RS / WADO-RS) or over DIMSE
    (C-FIND, then C-MOVE to RefSet's own listener or C-GET).

    One model for both transports (rather than a sibling model): the import page
    lists one set of connections, the pull job and `pacs.pull` take either, and
    the fields of the other transport stay blank."""

    class Auth(models.TextChoices):
        NONE = "none", _("none")
        BASIC = "basic", _("HTTP basic")
        BEARER = "bearer", _("bearer token")

    class Transport(models.TextChoices):
        DICOMWEB = "dicomweb", _("DICOMweb")
        DIMSE = "dimse", _("DIMSE (C-FIND / C-MOVE / C-GET)")

    class Retrieve(models.TextChoices):
        MOVE = "move", _("C-MOVE to RefSet's listener")
        GET = "get", _("C-GET")

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="pacs_connections"
    )
    name = models.CharField(_("name"), max_length=100)
    transport = models.CharField(
        _("transport"), max_length=8, choices=Transport.choices, default=Transport.DICOMWEB
    )
    base_url = models.URLField(_("DICOMweb base URL"), max_length=500, blank=True)
    # DIMSE: the PACS's AE title and address; how studies are retrieved.
    ae_title = models.CharField(_("PACS AE title"), max_length=16, blank=True)
    host = models.CharField(_("PACS host"), max_length=255, blank=True)
    port = models.PositiveIntegerField(_("PACS port"), null=True, blank=True)
    retrieve = models.CharField(
        _("retrieve by"), max_length=4, choices=Retrieve.choices, default=Retrieve.MOVE
    )
    auth = models.CharField(
        _("authentication"), max_length=8, choices=Auth.choices, default=Auth.NONE
    )
    username = models.CharField(_("username"), max_length=150, blank=True)
    secret_encrypted = models.TextField(
        _("password or token (encrypted)"),
        blank=True,
        help_text=_("Encrypted with REFSET_KEY_ENCRYPTION_KEY; never shown again."),
    )

    class Meta:
        ordering = ["project", "name"]
        verbose_name = _("PACS connection")
        verbose_name_plural = _("PACS connections")
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="pacs_name_per_project")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.address})"

    @property
    def address(self) -> str:
        """Where the PACS is: its DICOMweb URL, or AE title@host:port."""
        if self.transport == self.Transport.DIMSE:
            return f"{self.ae_title}@{self.host}:{self.port}"
        return self.base_url


class DicomRoute(GatewayPeer):
    """Who may send to RefSet's DICOM listener (C-STORE), and into which project.

    An association is accepted only from a calling AE title whose address lies in
    `allowed_host` (an IP address or a CIDR network) with an active route; its
    objects are imported into the route's project. A manager of the project keeps
    its routes; at most one active route per calling AE title and host."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="dicom_routes"
    )
    calling_ae_title = models.CharField(_("calling AE title"), max_length=16)
    allowed_host = models.CharField(
        _("allowed host"),
        max_length=64,
        help_text=_("IP address or network (CIDR) the sender connects from"),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["project", "calling_ae_title"]
        verbose_name = _("DICOM sender")
        verbose_name_plural = _("DICOM senders")
        constraints = [
            models.UniqueConstraint(
                fields=["calling_ae_title", "allowed_host"],
                condition=models.Q(active=True),
                name="dicom_route_active_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.calling_ae_title}@{self.allowed_host} -> {self.project_id}"
