"""Dataset-version API payloads. Cases of the sequestered split never reach a
user without datasets.view_sequestered (the views filter before serializing)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import serializers

from annotation_server.datasets.models import DatasetCase, DatasetVersion, Evaluation


class DatasetVersionSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug", read_only=True)
    parent = serializers.CharField(source="parent.version", default=None, read_only=True)
    frozen_by = serializers.SerializerMethodField()
    cases = serializers.SerializerMethodField()
    retired = serializers.SerializerMethodField()

    class Meta:
        model = DatasetVersion
        fields = [
            "id",
            "project",
            "version",
            "parent",
            "title",
            "notes",
            "frozen",
            "frozen_at",
            "frozen_by",
            "seed",
            "split_ratios",
            "selection",
            "content_sha256",
            "cases",
            "retired",
            "created_at",
        ]
        read_only_fields = fields

    def get_frozen_by(self, obj) -> str | None:
        user = obj.frozen_by
        if user is None:
            return None
        profile = getattr(user, "profile", None)
        return profile.pseudonym if profile else user.get_username()

    def get_cases(self, obj) -> int:
        return obj.cases.filter(retired=False).count()

    def get_retired(self, obj) -> int:
        return obj.cases.filter(retired=True).count()


class DatasetCaseSerializer(serializers.ModelSerializer):
    case_id = serializers.IntegerField(source="case.pk", read_only=True)

    class Meta:
        model = DatasetCase
        fields = [
            "case_id",
            "case_code",
            "patient_pseudo_id",
            "site_code",
            "manufacturer",
            "case_label",
            "split",
            "retired",
            "retired_reason",
            "reference_sha256",
        ]
        read_only_fields = fields


class DraftSerializer(serializers.Serializer):
    project = serializers.SlugField()
    version = serializers.CharField(max_length=32)
    parent = serializers.CharField(max_length=32, required=False, allow_blank=True)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)
    notes = serializers.CharField(required=False, allow_blank=True)
    all_adjudicated = serializers.BooleanField(required=False, default=False)
    cases = serializers.ListField(child=serializers.CharField(max_length=32), required=False)
    sites = serializers.ListField(child=serializers.CharField(max_length=16), required=False)
    manufacturers = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False
    )
    seed = serializers.IntegerField(min_value=0, required=False, default=1)
    ratios = serializers.DictField(child=serializers.FloatField(), required=False)
    retire_reason = serializers.CharField(max_length=200, required=False, allow_blank=True)


class FreezeSerializer(serializers.Serializer):
    confirm = serializers.CharField(max_length=32)


class EvaluationSerializer(serializers.ModelSerializer):
    """One evaluation; `result` (qc/evaluation/result.schema.json) once it
    succeeded, `problems` (translated) when it was rejected."""

    split = serializers.CharField(read_only=True, help_text='"" is the whole version')
    project = serializers.CharField(source="project.slug", read_only=True)
    version = serializers.CharField(source="dataset_version.version", read_only=True)
    job = serializers.IntegerField(source="job_id", read_only=True, allow_null=True)
    created_by = serializers.SerializerMethodField()
    problems = serializers.SerializerMethodField()
    result = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "project",
            "version",
            "split",
            "product",
            "kind",
            "submission_name",
            "submission_sha256",
            "submission_bytes",
            "operating_threshold",
            "rule",
            "rule_threshold",
            "job",
            "status",
            "result",
            "problems",
            "created_by",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_created_by(self, obj) -> str | None:
        user = obj.created_by
        if user is None:
            return None
        profile = getattr(user, "profile", None)
        return profile.pseudonym if profile else user.get_username()

    def get_problems(self, obj) -> list[dict]:
        from annotation_server.datasets.evaluation_report import translated_problems

        return translated_problems(obj.problems or [])

    def get_result(self, obj) -> dict | None:
        return obj.result if obj.status == Evaluation.Status.SUCCEEDED else None


class EvaluationRequestSerializer(serializers.Serializer):
    submission = serializers.FileField(
        help_text="LUNA16 detection CSV, classification CSV, DICOM SEG or a zip of SEGs, "
        "or a DR grading CSV (case_id or seriesuid; dr_grade 0-4 or ungradable and/or "
        "referable_probability 0-1; optional dmo absent/present/ungradable and/or "
        "dmo_probability 0-1, which add the macular oedema figures)"
    )
    product = serializers.CharField(max_length=200, required=False, allow_blank=True)
    kind = serializers.ChoiceField(
        choices=[("", "detect from the file"), *Evaluation.Kind.choices],
        required=False,
        allow_blank=True,
    )
    split = serializers.CharField(
        max_length=16,
        required=False,
        default="test",
        allow_blank=True,
        help_text='"test" (the sequestered split: needs datasets.view_sequestered), '
        '"validation", "train", or "" for the whole version (needs it too)',
    )
    operating_threshold = serializers.FloatField(
        required=False, allow_null=True, min_value=0.0, max_value=1.0
    )

    def validate_split(self, value: str) -> str:
        if value not in ("", "train", "validation", "test"):
            raise serializers.ValidationError(
                _("Choose test, validation, train, or nothing for the whole version.")
            )
        return value
