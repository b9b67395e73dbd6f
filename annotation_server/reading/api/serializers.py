from rest_framework import serializers

from annotation_server.reading.models import CaseLabel, Finding, ReadingTask

TIMING_FIELDS = ("assigned_at", "due_at", "started_at", "submitted_at", "active_seconds")


def _labeller(context):
    from annotation_server.reading.anonymise import ReaderLabeller

    labeller = context.get("labeller")
    if labeller is None:
        labeller = context["labeller"] = ReaderLabeller(context["request"].user)
    return labeller


class ReadingTaskSerializer(serializers.ModelSerializer):
    reader = serializers.SerializerMethodField()
    case_code = serializers.CharField(source="case.code", read_only=True)
    project = serializers.CharField(source="case.project.slug", read_only=True)

    class Meta:
        model = ReadingTask
        fields = [
            "id",
            "case",
            "case_code",
            "project",
            "reader",
            "phase",
            "state",
            *TIMING_FIELDS,
            "version",
        ]
        read_only_fields = fields

    def get_reader(self, task) -> str:
        return _labeller(self.context).label(task)

    def to_representation(self, task):
        data = super().to_representation(task)
        if not _labeller(self.context).shows_timings(task):
            for field in TIMING_FIELDS:
                data[field] = None
        return data


class FindingSerializer(serializers.ModelSerializer):
    task = serializers.PrimaryKeyRelatedField(queryset=ReadingTask.objects.all())
    reader = serializers.SerializerMethodField()
    version = serializers.IntegerField(required=False)
    # The workstation names a new finding itself, so a create retried after a lost
    # response finds the first one instead of making a duplicate.
    uid = serializers.UUIDField(required=False)

    class Meta:
        model = Finding
        fields = [
            "id",
            "uid",
            "task",
            "reader",
            "finding_type",
            "geometry",
            "attributes",
            "source",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "reader", "created_at", "updated_at"]

    def get_reader(self, finding) -> str:
        return _labeller(self.context).label(finding.task)

    def validate_task(self, task):
        request = self.context["request"]
        if task.reader_id != request.user.pk:
            raise serializers.ValidationError("You can only add findings to your own reads.")
        return task


class CaseLabelSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(required=False)

    class Meta:
        model = CaseLabel
        fields = ["values", "version", "updated_at"]
        read_only_fields = ["updated_at"]


class SubmitSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False)
    active_seconds = serializers.IntegerField(required=False, min_value=0)


class HeartbeatSerializer(serializers.Serializer):
    seconds = serializers.IntegerField(min_value=0, max_value=3600)
