from rest_framework import serializers

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
