from rest_framework import serializers

from annotation_server.accounts.models import Role, Site, UserProfile
from annotation_server.projects.models import Case, LabelSchema, Project, ReadingProtocol
from qc.result import reader_warnings


class LabelSchemaSerializer(serializers.ModelSerializer):
    class Meta:
        model = LabelSchema
        fields = ["id", "key", "version", "name", "definition"]


class ReadingProtocolSerializer(serializers.ModelSerializer):
    class Meta:
        model = ReadingProtocol
        exclude = ["id", "project"]


class ProjectSerializer(serializers.ModelSerializer):
    label_schema = LabelSchemaSerializer(read_only=True)
    protocol = ReadingProtocolSerializer(read_only=True)
    sites = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)

    class Meta:
        model = Project
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "task_type",
            "status",
            "modality",
            "body_part",
            "sites",
            "deid_clean_descriptors",
            "deid_shift_dates",
            "qc_profile_version",
            "label_schema",
            "protocol",
            "created_at",
        ]


class CaseSerializer(serializers.ModelSerializer):
    """No per-read counts or timings here: readers may see this and stay blind."""

    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    site = serializers.SlugRelatedField(slug_field="code", read_only=True)
    series_uid = serializers.CharField(source="series.series_uid", read_only=True)
    modality = serializers.CharField(source="series.modality", read_only=True)
    qc_warnings = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = [
            "id",
            "code",
            "project",
            "site",
            "series_uid",
            "modality",
            "state",
            "qc_status",
            "qc_warnings",
            "version",
        ]

    def get_qc_warnings(self, case) -> list[dict]:
        """The image-QC warnings a reader should see (the viewer shows them as a banner):
        those of the case's latest report. The reports belong to the quality app, above
        this one, so they are reached through the relation, not imported; the rule of
        what readers see is qc's, shared with the quality app."""
        latest = case.qc_reports.order_by("-created_at").values_list("results", flat=True)
        return reader_warnings(latest.first() or [])


# ------------------------------------------------------------------ the console (writes)

PROJECT_WRITE_FIELDS = [
    "slug",
    "name",
    "description",
    "task_type",
    "status",
    "modality",
    "body_part",
    "deid_clean_descriptors",
    "deid_shift_dates",
]


class ProtocolWriteSerializer(serializers.ModelSerializer):
    """Field checks only; the protocol's cross-field rules are its clean()'s."""

    class Meta:
        model = ReadingProtocol
        exclude = ["id", "project", "updated_at"]
        extra_kwargs = {name: {"required": False} for name in ("readers_per_case",)}


class SchemaSourceSerializer(serializers.Serializer):
    """Where a schema comes from: a stored one (`schema_id`, shipped schemas
    included), or a definition uploaded as JSON (stored as a new version of `key`)."""

    schema_id = serializers.IntegerField(required=False)
    key = serializers.SlugField(required=False, max_length=64)
    name = serializers.CharField(required=False, max_length=200)
    definition = serializers.JSONField(required=False)

    def validate(self, data):
        from django.utils.translation import gettext

        from annotation_server.projects import schema as schema_rules

        if "schema_id" in data:
            schema = LabelSchema.objects.filter(pk=data["schema_id"]).first()
            if schema is None:
                raise serializers.ValidationError({"schema_id": gettext("No such label schema.")})
            data["schema"] = schema
            return data
        if "definition" not in data:
            raise serializers.ValidationError(
                {"schema_id": gettext("Give schema_id, or key, name and definition.")}
            )
        missing = {
            k: gettext("This field is required with a definition.")
            for k in ("key", "name")
            if not data.get(k)
        }
        if missing:
            raise serializers.ValidationError(missing)
        try:
            schema_rules.validate_definition(data["definition"])
        except schema_rules.SchemaError as exc:
            raise serializers.ValidationError({"definition": exc.errors}) from None
        return data


class ProjectWriteSerializer(serializers.ModelSerializer):
    protocol = ProtocolWriteSerializer(required=False)
    label_schema = SchemaSourceSerializer(required=False, write_only=True)
    sites = serializers.SlugRelatedField(
        slug_field="code", many=True, required=False, queryset=Site.objects.all()
    )

    class Meta:
        model = Project
        fields = [*PROJECT_WRITE_FIELDS, "protocol", "label_schema", "sites"]
        extra_kwargs = {"slug": {"validators": []}}


class QcProfileSerializer(serializers.Serializer):
    """The stored profile (differences from the defaults) and the effective one."""

    profile = serializers.DictField(help_text="stored: what differs from the defaults")
    version = serializers.IntegerField(read_only=True)
    effective = serializers.DictField(read_only=True)
    defaults = serializers.DictField(read_only=True)
    rules = serializers.ListField(child=serializers.CharField(), read_only=True)


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="user.pk", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    name = serializers.CharField(source="user.get_full_name", read_only=True)
    pseudonym = serializers.CharField(source="profile.pseudonym", default=None, read_only=True)
    roles = serializers.ListField(child=serializers.CharField())
    qualified = serializers.BooleanField(read_only=True)
    invitation_pending = serializers.BooleanField(read_only=True)
    specialty = serializers.CharField(source="profile.specialty", default="", read_only=True)
    title = serializers.CharField(source="profile.title", default="", read_only=True)
    years_experience = serializers.IntegerField(
        source="profile.years_experience", default=None, read_only=True
    )
    site = serializers.CharField(source="profile.site.code", default=None, read_only=True)


class ProfileWriteSerializer(serializers.Serializer):
    specialty = serializers.CharField(required=False, allow_blank=True, max_length=100)
    title = serializers.ChoiceField(
        choices=UserProfile.Title.choices, required=False, allow_blank=True
    )
    years_experience = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=70
    )
    site = serializers.SlugRelatedField(
        slug_field="code", queryset=Site.objects.all(), required=False, allow_null=True
    )


ROLE_CHOICES = [Role.READER, Role.ARBITRATOR, Role.MANAGER]


class MemberAddSerializer(serializers.Serializer):
    """An existing person (`user`: id or username), or a new account (`username`
    with `create: true`; first sign-in by `password` or `invitation`)."""

    user = serializers.CharField(required=False)
    create = serializers.BooleanField(default=False)
    username = serializers.CharField(required=False, max_length=150)
    first_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    last_name = serializers.CharField(required=False, allow_blank=True, max_length=150)
    email = serializers.EmailField(required=False, allow_blank=True)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLE_CHOICES), allow_empty=False
    )
    first_sign_in = serializers.ChoiceField(
        choices=["invitation", "password"], default="invitation"
    )
    profile = ProfileWriteSerializer(required=False)


class MemberUpdateSerializer(serializers.Serializer):
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=ROLE_CHOICES), required=False, allow_empty=False
    )
    profile = ProfileWriteSerializer(required=False)


class DeactivateSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500)
