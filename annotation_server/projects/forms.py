"""Forms of the manager's console: project, reading protocol, label schema, QC
profile and members. Validation that the REST API shares lives in services and in
the models' clean(); these forms only shape the input."""

from __future__ import annotations

import json

from django import forms
from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

import qc
from annotation_server.accounts.models import Role, Site, UserProfile
from annotation_server.projects import schema as schema_rules
from annotation_server.projects.models import LabelSchema, Project, ReadingProtocol
from qc.profile import THRESHOLD_GROUPS, UNITS

MAX_SCHEMA_BYTES = 512 * 1024


class ProjectForm(forms.ModelForm):
    sites = forms.ModelMultipleChoiceField(
        Site.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label=gettext_lazy("sites"),
        help_text=gettext_lazy("Institutions that contribute images or readers."),
    )

    class Meta:
        model = Project
        fields = [
            "name",
            "slug",
            "description",
            "task_type",
            "status",
            "modality",
            "body_part",
            "deid_clean_descriptors",
            "deid_shift_dates",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["sites"].initial = list(self.instance.sites.all())
            if self.instance.cases.exists():
                self.fields["slug"].disabled = True
                self.fields["slug"].help_text = _("Fixed: the project has cases.")

    def clean_slug(self):
        from annotation_server.projects.services import RESERVED_SLUGS

        slug = self.cleaned_data["slug"]
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError(_("This slug is reserved; choose another."))
        return slug

    def clean_modality(self):
        codes = [m.strip().upper() for m in self.cleaned_data["modality"].split(",") if m.strip()]
        bad = [c for c in codes if not c.isalnum() or len(c) > 4]
        if not codes or bad:
            raise forms.ValidationError(_("Give DICOM modality codes such as CT, MR or DX."))
        return ",".join(codes)

    def clean_body_part(self):
        return self.cleaned_data["body_part"].strip().upper()


class ProtocolForm(forms.ModelForm):
    class Meta:
        model = ReadingProtocol
        fields = [
            "readers_per_case",
            "blind",
            "review_phase",
            "exclude_own_site",
            "match_rule",
            "match_threshold",
            "size_tolerance_mm",
            "auto_accept_min_readers",
            "auto_accept_same_type",
            "auto_accept_ordinal_tolerance",
            "drop_below_readers",
            "grade_rule",
            "grade_difference",
            "consensus_method",
            "arbitration_mode",
            "prelabel_visibility",
            "prelabel_min_confidence",
            "unassisted_fraction",
            "unassisted_seed",
            "reading_days",
            "writeback_reads",
        ]

    # Left out of a post (a client from before the grade rule), the grade rule
    # keeps the protocol's current setting rather than failing the whole form.
    KEEP_WHEN_OMITTED = ("grade_rule", "grade_difference", "writeback_reads")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.KEEP_WHEN_OMITTED:
            self.fields[name].required = False

    def _kept(self, name):
        value = self.cleaned_data.get(name)
        if value in (None, ""):
            return getattr(self.instance, name)
        return value

    def clean_grade_rule(self):
        return self._kept("grade_rule")

    def clean_grade_difference(self):
        return self._kept("grade_difference")

    def clean_writeback_reads(self):
        return self._kept("writeback_reads")


class SchemaChoiceForm(forms.Form):
    """Where the project's label schema comes from."""

    SOURCES = [
        ("existing", gettext_lazy("a shipped or stored schema")),
        ("upload", gettext_lazy("upload a JSON file")),
    ]
    source = forms.ChoiceField(
        choices=SOURCES, initial="existing", widget=forms.RadioSelect, label=gettext_lazy("schema")
    )
    existing = forms.ModelChoiceField(
        LabelSchema.objects.all(), required=False, label=gettext_lazy("stored schema")
    )
    file = forms.FileField(
        required=False,
        label=gettext_lazy("schema file (JSON)"),
        help_text=gettext_lazy(
            'Either a definition ({"finding_types": [...], "case_fields": [...]}) or '
            '{"key", "name", "definition"} as the shipped schemas are written.'
        ),
    )
    key = forms.SlugField(
        required=False,
        max_length=64,
        label=gettext_lazy("schema key"),
        help_text=gettext_lazy("For an upload: an existing key makes a new version of it."),
    )
    name = forms.CharField(required=False, max_length=200, label=gettext_lazy("schema name"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.schema_errors: list[tuple[str, str]] = []
        self.fields["existing"].label_from_instance = lambda s: f"{s.name} · {s.key} v{s.version}"

    def clean_file(self):
        upload = self.cleaned_data.get("file")
        if not upload:
            return None
        if upload.size > MAX_SCHEMA_BYTES:
            raise forms.ValidationError(_("A schema file is at most 512 KB."))
        try:
            return json.loads(upload.read().decode("utf-8-sig"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise forms.ValidationError(
                _("The file is not valid JSON: %(error)s") % {"error": exc}
            ) from None

    def clean(self):
        data = super().clean()
        if data.get("source") == "existing":
            if not data.get("existing"):
                self.add_error("existing", _("Choose a schema."))
            return data
        doc = data.get("file")
        if doc is None:
            if "file" not in self.errors:
                self.add_error("file", _("Choose a JSON file to upload."))
            return data
        definition = doc.get("definition", doc) if isinstance(doc, dict) else doc
        key = data.get("key") or (doc.get("key") if isinstance(doc, dict) else "") or ""
        name = data.get("name") or (doc.get("name") if isinstance(doc, dict) else "") or ""
        if not key:
            self.add_error("key", _("Give the schema a key (or put one in the file)."))
        elif not forms.SlugField().clean(key):
            self.add_error("key", _("Use letters, digits, - and _ only."))
        if not name:
            self.add_error("name", _("Give the schema a name (or put one in the file)."))
        try:
            schema_rules.validate_definition(definition)
        except schema_rules.SchemaError as exc:
            self.schema_errors = split_schema_errors(exc.errors)
            self.add_error(
                "file",
                ngettext(
                    "The schema has %(n)s problem; it is listed with its place below.",
                    "The schema has %(n)s problems; each is listed with its place below.",
                    len(exc.errors),
                )
                % {"n": len(exc.errors)},
            )
        data["definition"], data["key"], data["name"] = definition, key, name
        return data


class SchemaVersionForm(forms.Form):
    """A new version of the project's current schema, edited as JSON."""

    name = forms.CharField(max_length=200, label=gettext_lazy("schema name"))
    definition = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 24, "class": "mono", "spellcheck": "false"}),
        label=gettext_lazy("definition (JSON)"),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.schema_errors: list[tuple[str, str]] = []

    def clean_definition(self):
        try:
            definition = json.loads(self.cleaned_data["definition"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from None
        try:
            schema_rules.validate_definition(definition)
        except schema_rules.SchemaError as exc:
            self.schema_errors = split_schema_errors(exc.errors)
            raise forms.ValidationError(
                ngettext(
                    "The schema has %(n)s problem; it is listed with its place below.",
                    "The schema has %(n)s problems; each is listed with its place below.",
                    len(exc.errors),
                )
                % {"n": len(exc.errors)}
            ) from None
        return definition


def split_schema_errors(errors: list[str]) -> list[tuple[str, str]]:
    """The validator's messages as (where in the schema, problem): "finding_types[0]
    (nodule).attributes[2] (size): a number needs a unit" -> ("finding_types[0]
    (nodule).attributes[2] (size)", "a number needs a unit")."""
    out = []
    for error in errors:
        where, sep, problem = error.partition(": ")
        out.append((where, problem) if sep else ("", error))
    return out


# ------------------------------------------------------------------ QC profile

RULE_LABELS = {
    "modality_match": gettext_lazy("modality matches the project"),
    "body_part_match": gettext_lazy("body part matches the project"),
    "slice_thickness": gettext_lazy("slice thickness"),
    "pixel_spacing": gettext_lazy("pixel spacing"),
    "slice_missing": gettext_lazy("missing slices"),
    "slice_duplicate": gettext_lazy("duplicate slices"),
    "slice_spacing_uniform": gettext_lazy("uniform slice spacing"),
    "orientation_consistent": gettext_lazy("consistent orientation"),
    "slice_count": gettext_lazy("number of slices"),
    "acquisition_recorded": gettext_lazy("acquisition parameters recorded"),
    "patient_age": gettext_lazy("patient age recorded"),
    "ct_hu_calibration": gettext_lazy("CT number calibration (air, soft tissue)"),
    "ct_noise": gettext_lazy("CT image noise"),
    "ct_truncated_fov": gettext_lazy("truncated field of view"),
    "ct_metal": gettext_lazy("metal artefacts"),
    "xr_overexposure": gettext_lazy("overexposure"),
    "xr_underexposure": gettext_lazy("underexposure"),
    "xr_dynamic_range": gettext_lazy("dynamic range"),
    "xr_symmetry": gettext_lazy("left-right symmetry of the lung fields"),
    "xr_foreign_object": gettext_lazy("foreign objects in the central field"),
    "burned_in_text": gettext_lazy("burned-in text"),
    "photo_focus": gettext_lazy("focus (sharpness)"),
    "photo_overexposure": gettext_lazy("overexposure"),
    "photo_underexposure": gettext_lazy("underexposure"),
    "photo_field_of_view": gettext_lazy("field of view present and centred"),
    "photo_size": gettext_lazy("image size"),
    "photo_colour": gettext_lazy("colour channels"),
}
THRESHOLD_LABELS = {
    "max_slice_thickness_mm": gettext_lazy("slice thickness: warn above"),
    "fail_slice_thickness_mm": gettext_lazy("slice thickness: fail above"),
    "min_slices": gettext_lazy("fewest slices"),
    "max_slices": gettext_lazy("most slices"),
    "gap_factor": gettext_lazy("missing slice: step larger than the median step times"),
    "duplicate_tolerance_mm": gettext_lazy("duplicate slice: positions closer than"),
    "max_spacing_deviation": gettext_lazy("slice spacing deviation: warn above"),
    "fail_spacing_deviation": gettext_lazy("slice spacing deviation: fail above"),
    "orientation_tolerance": gettext_lazy("orientation: largest difference of direction cosines"),
    "pixel_spacing_min_mm": gettext_lazy("smallest pixel spacing"),
    "pixel_spacing_max_mm": gettext_lazy("largest pixel spacing"),
    "air_hu": gettext_lazy("expected CT number of air"),
    "soft_tissue_hu": gettext_lazy("expected CT number of soft tissue"),
    "hu_warn_tolerance": gettext_lazy("CT number deviation: warn above"),
    "hu_fail_tolerance": gettext_lazy("CT number deviation: fail above"),
    "max_noise_hu": gettext_lazy("noise: warn above"),
    "fail_noise_hu": gettext_lazy("noise: fail above"),
    "max_truncation_fraction": gettext_lazy("body on the image edge: warn above"),
    "fail_truncation_fraction": gettext_lazy("body on the image edge: fail above"),
    "max_metal_fraction": gettext_lazy("metal voxels: warn above"),
    "fail_metal_fraction": gettext_lazy("metal voxels: fail above"),
    "metal_hu": gettext_lazy("metal: CT number above"),
    "max_clipped_fraction": gettext_lazy("clipped pixels: warn above (fail above twice)"),
    "min_mean_display": gettext_lazy("mean brightness: warn below"),
    "max_mean_display": gettext_lazy("mean brightness: warn above"),
    "min_dynamic_range": gettext_lazy("dynamic range (p99 − p1): warn below"),
    "max_asymmetry": gettext_lazy("lung-field asymmetry: warn above"),
    "max_foreign_fraction": gettext_lazy("saturated pixels in the central field: warn above"),
    "text_min_rows": gettext_lazy("burned-in text: fewest text rows to flag"),
    "photo_min_sharpness": gettext_lazy("sharpness: warn below"),
    "photo_fail_sharpness": gettext_lazy("sharpness: fail below"),
    "photo_max_clipped_fraction": gettext_lazy(
        "clipped pixels in the field of view: warn above (fail above twice)"
    ),
    "photo_max_mean_luma": gettext_lazy("mean brightness (0–255): warn above"),
    "photo_min_mean_luma": gettext_lazy("mean brightness (0–255): warn below"),
    "photo_max_dark_fraction": gettext_lazy("dark pixels in the field of view: warn above"),
    "photo_min_fov_roundness": gettext_lazy("field of view roundness: warn below"),
    "photo_min_fov_diameter": gettext_lazy("field of view diameter / short side: warn below"),
    "photo_max_fov_offset": gettext_lazy("field of view off centre / short side: warn above"),
    "photo_min_fov_inside": gettext_lazy("share of the field of view inside the frame: warn below"),
    "photo_min_side_px": gettext_lazy("short side: warn below"),
    "photo_fail_side_px": gettext_lazy("short side: fail below"),
    "photo_min_colour_spread": gettext_lazy("colour channel spread: warn below"),
}
GROUP_LABELS = {
    "geometry": gettext_lazy("Slice geometry"),
    "pixel_spacing": gettext_lazy("Pixel spacing"),
    "ct_pixels": gettext_lazy("CT pixels"),
    "radiograph_pixels": gettext_lazy("Radiograph pixels"),
    "text": gettext_lazy("Burned-in text"),
    "photo_pixels": gettext_lazy("Photograph pixels"),
}
UNIT_LABELS = {
    "mm": gettext_lazy("mm"),
    "HU": "HU",
    "ratio": gettext_lazy("fraction (0–1)"),
    "×": "×",
    "px": gettext_lazy("px"),
    "": "",
}
# Thresholds that may be empty (None: the check is off).
_OPTIONAL = {"min_slices", "max_slices", "fail_truncation_fraction"}
_INTEGER = {"min_slices", "max_slices", "text_min_rows", "photo_min_side_px", "photo_fail_side_px"}


def defaults_for(project: Project) -> qc.Profile:
    modality = project.modalities[0] if project.modalities else ""
    return qc.Profile.default_for(modality, project.body_part)


def applicable_rules(project: Project) -> list[str]:
    modalities = project.modalities or [""]
    return [
        key
        for key, rule in qc.RULES.items()
        if not rule.applies_to or any(rule.applies(m) for m in modalities)
    ]


def threshold_groups(project: Project) -> list[tuple[str, list[str]]]:
    modalities = set(project.modalities)
    return [
        (group, list(names))
        for group, (applies_to, names) in THRESHOLD_GROUPS.items()
        if not applies_to or modalities & set(applies_to)
    ]


class QcProfileForm(forms.Form):
    """The project's QC profile as a form: each applicable rule on or off, each
    threshold with its unit. Stored as the differences from the modality and body
    part's defaults (so a later change of body part moves the untouched thresholds)."""

    def __init__(self, project: Project, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.defaults = defaults_for(project)
        current = self._current()
        self.rule_names = applicable_rules(project)
        for key in self.rule_names:
            self.fields[f"rule_{key}"] = forms.BooleanField(
                required=False, label=RULE_LABELS.get(key, key), initial=current.wants(key)
            )
        self.groups = []
        for group, names in threshold_groups(project):
            for name in names:
                field_class = forms.IntegerField if name in _INTEGER else forms.FloatField
                value = getattr(current, name)
                self.fields[name] = field_class(
                    required=name not in _OPTIONAL,
                    min_value=None if name == "air_hu" else 0,
                    label=THRESHOLD_LABELS.get(name, name),
                    initial=value,
                    help_text=UNIT_LABELS.get(UNITS.get(name, ""), ""),
                )
                self.fields[name].unit = UNITS.get(name, "")
                self.fields[name].default = getattr(self.defaults, name)
            self.groups.append((GROUP_LABELS[group], names))

    def _current(self) -> qc.Profile:
        data = dict(self.project.qc_profile or {})
        data.setdefault("base", self.project.modalities[0] if self.project.modalities else "")
        data.setdefault("region", self.project.body_part or None)
        try:
            return qc.Profile.from_dict(data)
        except (TypeError, ValueError):
            return self.defaults

    def rule_fields(self):
        return [(key, self[f"rule_{key}"]) for key in self.rule_names]

    def group_fields(self):
        return [(label, [self[name] for name in names]) for label, names in self.groups]

    def clean(self):
        data = super().clean()
        for low, high in (
            ("max_slice_thickness_mm", "fail_slice_thickness_mm"),
            ("max_spacing_deviation", "fail_spacing_deviation"),
            ("hu_warn_tolerance", "hu_fail_tolerance"),
            ("max_noise_hu", "fail_noise_hu"),
            ("max_metal_fraction", "fail_metal_fraction"),
            ("pixel_spacing_min_mm", "pixel_spacing_max_mm"),
            ("min_mean_display", "max_mean_display"),
            ("min_slices", "max_slices"),
        ):
            a, b = data.get(low), data.get(high)
            if a is not None and b is not None and a > b:
                self.add_error(
                    high, _("Must not be below “%(other)s”.") % {"other": THRESHOLD_LABELS[low]}
                )
        return data

    def profile(self) -> dict:
        """The stored form: only what differs from the defaults."""
        out: dict = {}
        disabled = sorted(k for k in self.rule_names if not self.cleaned_data.get(f"rule_{k}"))
        disabled += [k for k in self.defaults.disabled if k not in self.rule_names]
        if sorted(disabled) != sorted(self.defaults.disabled):
            out["disabled"] = sorted(disabled)
        for _label, names in self.groups:
            for name in names:
                value = self.cleaned_data.get(name)
                if value != getattr(self.defaults, name):
                    out[name] = value
        return out


# ------------------------------------------------------------------ members

MEMBER_ROLES = [
    (Role.READER, Role.READER.label),
    (Role.ARBITRATOR, Role.ARBITRATOR.label),
    (Role.MANAGER, Role.MANAGER.label),
]


class ReaderProfileForm(forms.ModelForm):
    class Meta:
        model = UserProfile
        fields = ["specialty", "title", "years_experience", "site"]


class AddMemberForm(forms.Form):
    user = forms.ModelChoiceField(
        get_user_model().objects.filter(is_active=True).select_related("profile"),
        label=gettext_lazy("person"),
    )
    roles = forms.MultipleChoiceField(
        choices=MEMBER_ROLES, widget=forms.CheckboxSelectMultiple, label=gettext_lazy("roles")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].label_from_instance = _person_label


def _person_label(user) -> str:
    profile = getattr(user, "profile", None)
    name = user.get_full_name()
    bits = [user.get_username()]
    if name:
        bits.append(name)
    if profile is not None:
        bits.append(profile.pseudonym)
    return " · ".join(bits)


class CreateAccountForm(forms.Form):
    PASSWORD_MODES = [
        ("invitation", gettext_lazy("invitation link (the person sets a password)")),
        ("password", gettext_lazy("one-time password, shown once")),
    ]
    username = forms.CharField(max_length=150, label=gettext_lazy("username"))
    first_name = forms.CharField(max_length=150, required=False, label=gettext_lazy("given name"))
    last_name = forms.CharField(max_length=150, required=False, label=gettext_lazy("family name"))
    email = forms.EmailField(required=False, label=gettext_lazy("email (optional)"))
    roles = forms.MultipleChoiceField(
        choices=MEMBER_ROLES, widget=forms.CheckboxSelectMultiple, label=gettext_lazy("roles")
    )
    specialty = forms.CharField(max_length=100, required=False, label=gettext_lazy("specialty"))
    title = forms.ChoiceField(
        choices=[("", "—"), *UserProfile.Title.choices], required=False, label=gettext_lazy("title")
    )
    years_experience = forms.IntegerField(
        min_value=0, max_value=70, required=False, label=gettext_lazy("years of experience")
    )
    site = forms.ModelChoiceField(Site.objects.all(), required=False, label=gettext_lazy("site"))
    password_mode = forms.ChoiceField(
        choices=PASSWORD_MODES,
        initial="invitation",
        widget=forms.RadioSelect,
        label=gettext_lazy("first sign-in"),
    )

    def clean_username(self):
        username = get_user_model().normalize_username(self.cleaned_data["username"].strip())
        field = get_user_model()._meta.get_field("username")
        for validator in field.validators:
            validator(username)
        if get_user_model().objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(
                _("This username is taken. To add that person, use “Add an existing person”.")
            )
        return username


class SiteForm(forms.ModelForm):
    class Meta:
        model = Site
        fields = ["code", "name", "site_type", "region"]
