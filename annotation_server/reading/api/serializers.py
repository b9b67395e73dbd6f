from django.utils.translation import gettext
from rest_framework import serializers

from annotation_server.reading.models import (
    CaseLabel,
    CaseProbability,
    Finding,
    Proposal,
    ReadingTask,
)

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


class OwnTaskField(serializers.PrimaryKeyRelatedField):
    """A reading task of the requesting reader. Someone else's task answers exactly
    as a task that does not exist: the error must not tell that it does."""

    def get_queryset(self):
        return ReadingTask.objects.filter(reader=self.context["request"].user)


class FindingSerializer(serializers.ModelSerializer):
    task = OwnTaskField()
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
            "measurements",
            "source",
            "model_name",
            "model_version",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "reader",
            "measurements",
            "model_name",
            "model_version",
            "created_at",
            "updated_at",
        ]

    def get_reader(self, finding) -> str:
        return _labeller(self.context).label(finding.task)

    def validate_source(self, value):
        """A finding's origin is the server's to set: a new finding is the reader's
        own ("manual"); a model finding keeps its origin, and editing it makes it
        "model_edited". Model findings only come from accepted proposals."""
        current = self.instance.source if self.instance is not None else None
        allowed = {current or Finding.Source.MANUAL}
        if current in (Finding.Source.MODEL_ACCEPTED, Finding.Source.MODEL_EDITED):
            allowed.add(Finding.Source.MODEL_EDITED)
        if value not in allowed:
            raise serializers.ValidationError(
                gettext(
                    "A finding's origin is set by the server: a model finding comes only "
                    "from accepting a model proposal."
                )
            )
        return value

    def to_representation(self, finding):
        data = super().to_representation(finding)
        if not _labeller(self.context).shows_timings(finding.task):
            data["created_at"] = data["updated_at"] = None  # another reader's pace
        return data


class CaseLabelSerializer(serializers.ModelSerializer):
    # Required and an object: a PUT without it answered 500 (KeyError), a list or a
    # string reached the schema rules, which expect {key: answer}.
    values = serializers.DictField()
    version = serializers.IntegerField(required=False)

    class Meta:
        model = CaseLabel
        fields = ["values", "derived", "version", "updated_at"]
        # derived: computed on the server (reading/derived.py), never written.
        read_only_fields = ["derived", "updated_at"]


class SubmitSerializer(serializers.Serializer):
    version = serializers.IntegerField(required=False)
    active_seconds = serializers.IntegerField(required=False, min_value=0)


class DeleteFindingSerializer(serializers.Serializer):
    """The version a delete was made from (query ?version= or the body); optional."""

    version = serializers.IntegerField(required=False, allow_null=True)


class HeartbeatSerializer(serializers.Serializer):
    seconds = serializers.IntegerField(min_value=0, max_value=3600)


class ProposalSerializer(serializers.ModelSerializer):
    """A model proposal as a reader sees it, with what this read decided about it."""

    model = serializers.CharField(source="model_version.name", read_only=True)
    model_version = serializers.CharField(source="model_version.version", read_only=True)
    weights_sha256 = serializers.CharField(source="model_version.weights_sha256", read_only=True)
    disposition = serializers.SerializerMethodField()

    class Meta:
        model = Proposal
        fields = [
            "id",
            "case",
            "series",
            "model",
            "model_version",
            "weights_sha256",
            "finding_type",
            "geometry",
            "attributes",
            "score",
            "threshold",
            "created_at",
            "disposition",
        ]
        read_only_fields = fields

    def get_disposition(self, proposal) -> str | None:
        return self.context.get("dispositions", {}).get(proposal.pk)


class CaseProbabilitySerializer(serializers.ModelSerializer):
    """A model's case-level estimates: class -> probability."""

    model = serializers.CharField(source="model_version.name", read_only=True)
    model_version = serializers.CharField(source="model_version.version", read_only=True)
    weights_sha256 = serializers.CharField(source="model_version.weights_sha256", read_only=True)

    class Meta:
        model = CaseProbability
        fields = [
            "id",
            "case",
            "model",
            "model_version",
            "weights_sha256",
            "probabilities",
            "threshold",
            "created_at",
        ]
        read_only_fields = fields


class EditedProposalSerializer(serializers.Serializer):
    geometry = serializers.JSONField()
    finding_type = serializers.CharField(required=False, max_length=48)
    attributes = serializers.JSONField(required=False)


class DispositionSerializer(serializers.Serializer):
    action = serializers.CharField()
    proposal = serializers.IntegerField(source="proposal_id")
    finding = serializers.IntegerField(source="finding_id", allow_null=True)
    dice = serializers.FloatField(allow_null=True)
    hd95_mm = serializers.FloatField(allow_null=True)
    decided_at = serializers.DateTimeField()
