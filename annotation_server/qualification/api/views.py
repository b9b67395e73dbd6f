"""REST for qualification.

/api/v1/qualification-tests/            the tests of your projects (readers: active
                                        ones; managers: all, with their cases)
  POST (manager)                        create {"project": slug, "name", thresholds}
  PATCH {id}/ (manager)                 thresholds, attempts allowed, active
  POST {id}/start/ (reader)             start (or continue) your attempt
  GET  {id}/readers/ (manager)          every reader's attempts and status
  POST {id}/reference/ (manager)        {"cases": {"<code>": [finding, ...]}}
  POST {id}/copy-reference/ (manager)   {"source": case id, "target": case id}
/api/v1/qualification-attempts/         your attempts (managers: all of their projects')

An attempt's score, misses and false positives appear only once it is submitted;
the reference never reaches a reader any other way.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from annotation_server.projects.models import Case, Project
from annotation_server.projects.permissions import MANAGE, READ, has_project_perm, project_ids
from annotation_server.reading import qualification as q
from annotation_server.reading.models import QualificationAttempt, QualificationTest

SCORE_FIELDS = ("sensitivity", "fp_per_case", "kappa", "passed", "details")


def _pseudonym(user) -> str:
    profile = getattr(user, "profile", None)
    return profile.pseudonym if profile else f"user-{user.pk}"


class QualificationTestSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(
        slug_field="slug", queryset=Project.objects.all(), required=True
    )
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
        return data


class ThresholdSerializer(serializers.Serializer):
    min_sensitivity = serializers.FloatField(min_value=0, max_value=1, required=False)
    max_fp_per_case = serializers.FloatField(min_value=0, required=False)
    min_kappa = serializers.FloatField(min_value=-1, max_value=1, required=False, allow_null=True)
    max_attempts = serializers.IntegerField(min_value=1, max_value=100, required=False)
    active = serializers.BooleanField(required=False)
    name = serializers.CharField(max_length=200, required=False)


class CopySerializer(serializers.Serializer):
    source = serializers.IntegerField()
    target = serializers.IntegerField()


class QualificationTestViewSet(
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    serializer_class = QualificationTestSerializer
    filterset_fields = ["active"]

    def get_queryset(self):
        user = self.request.user
        managed = project_ids(user, MANAGE)
        read = project_ids(user, READ)
        return (
            QualificationTest.objects.filter(
                Q(project_id__in=managed) | Q(project_id__in=read, active=True)
            )
            .select_related("project")
            .order_by("project__slug", "pk")
        )

    def _require_manager(self, test_or_project) -> None:
        project = getattr(test_or_project, "project", test_or_project)
        if not has_project_perm(self.request.user, project, MANAGE):
            raise PermissionDenied("Only the project's dataset managers can do this.")

    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        project = data.pop("project")
        if project.pk not in project_ids(request.user, MANAGE):
            raise PermissionDenied("Only the project's dataset managers can do this.")
        test = q.create_test(project, by=request.user, **data)
        return Response(self.get_serializer(test).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        test = self.get_object()
        self._require_manager(test)
        body = ThresholdSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        name = data.pop("name", None)
        if name is not None and name != test.name:
            QualificationTest.objects.filter(pk=test.pk).update(name=name)
            test.refresh_from_db()
        try:
            test = q.update_thresholds(test, by=request.user, **data)
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from None
        return Response(self.get_serializer(test).data)

    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        test = self.get_object()
        before = q.open_attempt(test, request.user)
        try:
            attempt = q.start_attempt(test, request.user)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        except q.QualificationError as exc:
            return Response(
                {"detail": str(exc), "code": "qualification"}, status=status.HTTP_409_CONFLICT
            )
        code = status.HTTP_200_OK if before is not None else status.HTTP_201_CREATED
        return Response(AttemptSerializer(attempt, context={"request": request}).data, code)

    @action(detail=True, methods=["get"])
    def readers(self, request, pk=None):
        test = self.get_object()
        self._require_manager(test)
        rows = q.overview(test)
        context = {"request": request}
        return Response(
            [
                {
                    "user_id": row["user_id"],
                    "reader": row["pseudonym"],
                    "qualified": row["qualified"],
                    "status": row["status"],
                    "attempts": AttemptSerializer(row["attempts"], many=True, context=context).data,
                }
                for row in rows
            ]
        )

    @action(detail=True, methods=["post"])
    def reference(self, request, pk=None):
        test = self.get_object()
        self._require_manager(test)
        cases = request.data.get("cases")
        if isinstance(cases, dict):
            foreign = set(cases) - set(test.cases.values_list("code", flat=True))
            if foreign:
                raise ValidationError(
                    {"cases": f"Not in this qualification set: {', '.join(sorted(foreign))}"}
                )
        try:
            n = q.import_reference_payload(
                test.project, dict(request.data), by=request.user, source="api"
            )
        except q.QualificationError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response({"findings": n}, status=status.HTTP_201_CREATED)

    @action(detail=True, methods=["post"], url_path="copy-reference")
    def copy_reference(self, request, pk=None):
        test = self.get_object()
        self._require_manager(test)
        body = CopySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        target = get_object_or_404(test.cases.all(), pk=body.validated_data["target"])
        source = get_object_or_404(
            Case.objects.filter(project_id__in=project_ids(request.user, MANAGE)),
            pk=body.validated_data["source"],
        )
        try:
            n = q.copy_reference(source, target, by=request.user)
        except q.QualificationError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response({"findings": n}, status=status.HTTP_201_CREATED)


class QualificationAttemptViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = AttemptSerializer
    filterset_fields = ["test", "passed"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return QualificationAttempt.objects.none()
        user = self.request.user
        return (
            QualificationAttempt.objects.filter(
                Q(reader=user) | Q(test__project_id__in=project_ids(user, MANAGE))
            )
            .select_related("test__project", "reader__profile")
            .order_by("test_id", "reader_id", "number")
        )
