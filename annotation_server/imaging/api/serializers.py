from rest_framework import serializers

from annotation_server.imaging.models import Instance, Series, Study


class StudySerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.slug", read_only=True)

    class Meta:
        model = Study
        fields = [
            "id",
            "project",
            "study_uid",
            "patient_pseudo_id",
            "site",
            "study_date",
            "patient_age_years",
            "patient_sex",
            "description",
            "created_at",
        ]
        read_only_fields = fields


SERIES_FIELDS = [
    "id",
    "study",
    "study_uid",
    "series_uid",
    "modality",
    "body_part",
    "description",
    "manufacturer",
    "model_name",
    "kernel",
    "kvp",
    "contrast",
    "slice_thickness_mm",
    "slice_spacing_mm",
    "pixel_spacing_mm",
    "orientation",
    "frame_of_reference_uid",
    "rows",
    "columns",
    "num_instances",
    "created_at",
]


class SeriesSerializer(serializers.ModelSerializer):
    """A series with its geometry (spacing in mm; null where the files have none)."""

    study_uid = serializers.CharField(source="study.study_uid", read_only=True)

    class Meta:
        model = Series
        fields = SERIES_FIELDS
        read_only_fields = fields


class SliceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instance
        fields = ["slice_index", "id", "position", "position_along_normal", "frame"]
        read_only_fields = fields


class SeriesDetailSerializer(SeriesSerializer):
    """A series and its slices in slice order (one entry per frame)."""

    instances = SliceSerializer(many=True, read_only=True)

    class Meta(SeriesSerializer.Meta):
        fields = [*SERIES_FIELDS, "instances"]
        read_only_fields = fields


class InstanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instance
        fields = [
            "id",
            "series",
            "sop_instance_uid",
            "sop_class_uid",
            "frame",
            "instance_number",
            "slice_index",
            "position",
            "position_along_normal",
            "rows",
            "columns",
            "rescale_slope",
            "rescale_intercept",
            "window_presets",
            "photometric",
            "transfer_syntax_uid",
            "sha256",
            "size_bytes",
        ]
        read_only_fields = fields
