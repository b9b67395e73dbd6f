"""Serializers of the qualification API (views.py). An attempt's score, misses
and false positives are serialized only once it is submitted."""

from __future__ import annotations

from rest_framework import serializers

from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, READ, has_project_perm
from annotation_server.qualification import services as q
from annotation_server.qualification.models import QualificationAttempt, QualificationTest

SCORE_FIELDS = ("sensitivity", "fp_per_case", "kappa", "passed", "details")


def _pseudonym(user) -> str:
    profile = getattr(user, "profile", None)
    return profile.pseudonym if profile else f"user-{user.pk}"


class VisibleProjectField(serializers.SlugRelatedField):
    """A project by slug among those the requesting user may see: one they may not
    see answers exactly like one that does not exist."""

    def get_queryset(self):
        return Project.objects.visible_to(self.context["request"].user)

    def to_internal_value(self, data):
        # PostgreSQL text cannot hold NUL: such a slug reached the query (500).
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().to_internal_value(data)


class QualificationTestSerializer(serializers.ModelSerializer):
    project = VisibleProjectField(slug_field="slug", required=True)
    case_count = serializers.SerializerMethodField()
    me = serializers.SerializerMethodField()

    class Meta:
        model = QualificationTest
        fields = [
            "id",
            "project",
            "name",
            "min_sensitivity",
            "max_fp_per_case",
            "min_kappa",
            "max_attempts",
            "cases_per_attempt",
            "draw",
            "active",
            "case_count",
            "me",
            "created_at",
        ]
        read_only_fields = ["id", "case_count", "me", "created_at"]

    def get_case_count(self, test) -> int:
        return test.cases.count()

    def get_me(self, test) -> dict | None:
        """The requesting reader's own standing (None for non-readers)."""
        user = self.context["request"].user
        if not has_project_perm(user, test.project, READ):
            return None
        status_ = q.status_for(test, user)
        return {
            "qualified": status_["qualified"],
            "attempts": len(status_["attempts"]),
            "attempts_left": status_["attempts_left"],
            "open_attempt": status_["open"].pk if status_["open"] else None,
            "can_start": status_["can_start"],
        }

    def to_representation(self, test):
        data = super().to_representation(test)
        if has_project_perm(self.context["request"].user, test.project, MANAGE):
            cases = list(test.cases.order_by("code"))
            counts = q.reference_counts(cases)
            data["cases"] = [
                {"id": c.pk, "code": c.code, "reference_findings": counts.get(c.pk, 0)}
                for c in cases
            ]
        return data


class AttemptSerializer(serializers.ModelSerializer):
    reader = serializers.SerializerMethodField()
    project = serializers.CharField(source="test.project.slug", read_only=True)
    tasks = serializers.SerializerMethodField()

    class Meta:
        model = QualificationAttempt
        fields = [
            "id",
            "test",
            "project",
            "reader",
            "number",
            "started_at",
            "submitted_at",
            "tasks",
            *SCORE_FIELDS,
        ]
        read_only_fields = fields

    def get_reader(self, attempt) -> str:
        if attempt.reader_id == self.context["request"].user.pk:
            return "me"
        return _pseudonym(attempt.reader)

    def get_tasks(self, attempt) -> list[dict]:
        return [
            {
                "id": t.pk,
                "case": t.case_id,
                "case_code": t.case.code,
                "state": t.state,
                "url": f"/read/{t.pk}/",
            }
            for t in attempt.tasks.select_related("case").order_by("case__code", "pk")
        ]

    def to_representation(self, attempt):
        data = super().to_representation(attempt)
        if attempt.submitted_at is None:  # nothing of the reference before submission
            for field in SCORE_FIELDS:
                data[field] = None
        elif not q.reveals_positions(attempt, self.context["request"].user):
            # a reader who may retake learns how many they missed, never where
            data["details"] = q.redacted_details(attempt.details)
        return data


class ThresholdSerializer(serializers.Serializer):
    min_sensitivity = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_fp_per_case = serializers.FloatField(min_value=0, required=False)
    min_kappa = serializers.FloatField(min_value=-1, max_value=1, required=False, allow_null=True)
    max_attempts = serializers.IntegerField(min_value=1, max_value=100, required=False)
    cases_per_attempt = serializers.IntegerField(
        min_value=1, max_value=1000, required=False, allow_null=True
    )
    draw = serializers.ChoiceField(choices=QualificationTest.Draw.choices, required=False)
    active = serializers.BooleanField(required=False)
    name = serializers.CharField(max_length=200, required=False)


class CopySerializer(serializers.Serializer):
    source = serializers.IntegerField()
    target = serializers.IntegerField()
