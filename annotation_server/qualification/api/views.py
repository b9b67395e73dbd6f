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
the reference never reaches a reader any other way. To its reader, a scored
attempt shows its misses and false positives only as counts by finding type
until the reader has passed or used every attempt (services.reveals_positions).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from annotation_server.projects.models import Case
from annotation_server.projects.permissions import MANAGE, READ, has_project_perm, project_ids
from annotation_server.qualification import services as q
from annotation_server.qualification.api.serializers import (
    AttemptSerializer,
    CopySerializer,
    QualificationTestSerializer,
    ThresholdSerializer,
)
from annotation_server.qualification.models import QualificationAttempt, QualificationTest

FINDINGS_WRITTEN = inline_serializer(
    "ReferenceFindingsWritten", {"findings": serializers.IntegerField()}
)
READER_STATUS = inline_serializer(
    "QualificationReaderStatus",
    {
        "user_id": serializers.IntegerField(),
        "reader": serializers.CharField(),
        "name": serializers.CharField(),
        "qualified": serializers.BooleanField(),
        "status": serializers.CharField(),
        "attempts": AttemptSerializer(many=True),
    },
    many=True,
)
REFERENCE_PAYLOAD = inline_serializer(
    "QualificationReference",
    {
        "cases": serializers.DictField(
            child=serializers.ListField(child=serializers.DictField()),
            help_text="case code -> its reference findings",
        )
    },
)


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
            raise PermissionDenied(gettext("Only the project's dataset managers can do this."))

    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        project = data.pop("project")
        if project.pk not in project_ids(request.user, MANAGE):
            raise PermissionDenied(gettext("Only the project's dataset managers can do this."))
        test = q.create_test(project, by=request.user, **data)
        return Response(self.get_serializer(test).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ThresholdSerializer, responses=QualificationTestSerializer)
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
        test = q.update_thresholds(test, by=request.user, **data)
        return Response(self.get_serializer(test).data)

    @extend_schema(request=None, responses={200: AttemptSerializer, 201: AttemptSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        test = self.get_object()
        before = q.open_attempt(test, request.user)
        attempt = q.start_attempt(test, request.user)
        code = status.HTTP_200_OK if before is not None else status.HTTP_201_CREATED
        return Response(AttemptSerializer(attempt, context={"request": request}).data, code)

    @extend_schema(responses=READER_STATUS)
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
                    "name": row["identity"]["name"],
                    "qualified": row["qualified"],
                    "status": row["status"],
                    "attempts": AttemptSerializer(row["attempts"], many=True, context=context).data,
                }
                for row in rows
            ]
        )

    @extend_schema(request=REFERENCE_PAYLOAD, responses={201: FINDINGS_WRITTEN})
    @action(detail=True, methods=["post"])
    def reference(self, request, pk=None):
        test = self.get_object()
        self._require_manager(test)
        # a JSON list or string is not the payload: the service says what is (was 500)
        payload = dict(request.data) if isinstance(request.data, Mapping) else request.data
        cases = payload.get("cases") if isinstance(payload, dict) else None
        if isinstance(cases, dict):
            foreign = set(cases) - set(test.cases.values_list("code", flat=True))
            if foreign:
                raise ValidationError(
                    {"cases": f"Not in this qualification set: {', '.join(sorted(foreign))}"}
                )
        n = q.import_reference_payload(test.project, payload, by=request.user, source="api")
        return Response({"findings": n}, status=status.HTTP_201_CREATED)

    @extend_schema(request=CopySerializer, responses={201: FINDINGS_WRITTEN})
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
        n = q.copy_reference(source, target, by=request.user)
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
