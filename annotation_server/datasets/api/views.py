"""REST for dataset versions (project managers only; everyone else: 404).

/api/v1/dataset-versions/               versions of your projects (?project=slug)
  POST                                  draft {"project", "version", "parent",
                                        "all_adjudicated" | "cases" | "sites"/
                                        "manufacturers", "seed", "ratios",
                                        "retire_reason", "title", "notes"}
  GET  {id}/                            one version
  POST {id}/freeze/                     {"confirm": "<version>"}: freeze the draft
  GET  {id}/cases/                      its cases (?split=train|validation|test)
  GET  {id}/splits/                     per split: cases, patients, positives, strata
  GET  {id}/changelog/                  computed changes against the parent
  GET  {id}/evaluations/                AI products scored against the version
  POST {id}/evaluations/                multipart: submission (file), product, kind,
                                        split (default test), operating_threshold;
                                        202 with the queued evaluation, or 400 with
                                        every problem of a malformed submission
  GET  {id}/evaluations/{evaluation_id}/  one evaluation (its result once scored)

The sequestered test split: without datasets.view_sequestered its cases are
left out of every list, and ?split=test answers 404; so do evaluations against
it (or against the whole version, which contains it).
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from annotation_server.datasets import evaluation_jobs, services
from annotation_server.datasets.api.serializers import (
    DatasetCaseSerializer,
    DatasetVersionSerializer,
    DraftSerializer,
    EvaluationRequestSerializer,
    EvaluationSerializer,
    FreezeSerializer,
)
from annotation_server.datasets.models import DatasetVersion
from annotation_server.datasets.querysets import SEQUESTERED_SPLIT, may_see_sequestered
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, project_ids


class DatasetVersionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    serializer_class = DatasetVersionSerializer
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def get_queryset(self):
        rows = (
            DatasetVersion.objects.visible_to(self.request.user)
            .select_related("project", "parent", "frozen_by__profile")
            .order_by("project__slug", "-created_at")
        )
        project = self.request.query_params.get("project")
        if project:
            rows = rows.filter(project__slug=project)
        return rows

    @extend_schema(request=DraftSerializer, responses={201: DatasetVersionSerializer})
    def create(self, request):
        data = DraftSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        user = request.user
        projects = Project.objects.all()
        if not user.is_superuser:
            projects = projects.filter(pk__in=project_ids(user, MANAGE))
        project = get_object_or_404(projects, slug=d["project"])
        parent = None
        if d.get("parent"):
            parent = get_object_or_404(DatasetVersion, project=project, version=d["parent"])
        draft = services.create_draft(
            project,
            version=d["version"],
            by=user,
            parent=parent,
            title=d.get("title", ""),
            notes=d.get("notes", ""),
            all_adjudicated=d.get("all_adjudicated", False),
            codes=d.get("cases"),
            sites=d.get("sites"),
            manufacturers=d.get("manufacturers"),
            seed=d.get("seed", 1),
            ratios=d.get("ratios"),
            retire_reason=d.get("retire_reason", ""),
        )
        return Response(DatasetVersionSerializer(draft).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=FreezeSerializer, responses=DatasetVersionSerializer)
    @action(detail=True, methods=["post"])
    def freeze(self, request, pk=None):
        version = self.get_object()
        data = FreezeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        frozen = services.freeze(version, by=request.user, confirm=data.validated_data["confirm"])
        return Response(DatasetVersionSerializer(frozen).data)

    @extend_schema(responses=DatasetCaseSerializer(many=True))
    @action(detail=True, methods=["get"])
    def cases(self, request, pk=None):
        version = self.get_object()
        split = request.query_params.get("split")
        if split == SEQUESTERED_SPLIT and not may_see_sequestered(request.user):
            raise Http404
        rows = version.cases.visible_to(request.user).select_related("case").order_by("case_code")
        if split:
            rows = rows.filter(split=split)
        page = self.paginate_queryset(rows)
        serializer = DatasetCaseSerializer(page if page is not None else rows, many=True)
        if page is not None:
            return self.get_paginated_response(serializer.data)
        return Response(serializer.data)

    @action(detail=True, methods=["get"])
    def splits(self, request, pk=None):
        version = self.get_object()
        see = may_see_sequestered(request.user)
        return Response(
            {
                "splits": services.split_summary(version, show_sequestered=see),
                "patient_leaks": sorted(services.patient_leaks(version)),
            }
        )

    @action(detail=True, methods=["get"])
    def changelog(self, request, pk=None):
        version = self.get_object()
        log = services.compute_changelog(version)
        if not may_see_sequestered(request.user):
            log = services.without_sequestered(version, log)
        return Response(log)

    @extend_schema(methods=["GET"], responses=EvaluationSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        request={"multipart/form-data": EvaluationRequestSerializer},
        responses={202: EvaluationSerializer},
    )
    @action(detail=True, methods=["get", "post"])
    def evaluations(self, request, pk=None):
        version = self.get_object()
        if request.method == "POST":
            data = EvaluationRequestSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            d = data.validated_data
            upload = d["submission"]
            evaluation = evaluation_jobs.request_evaluation(
                version,
                user=request.user,
                data=upload.read(),
                filename=upload.name,
                product=d.get("product", ""),
                kind=d.get("kind", ""),
                split=d.get("split", "test"),
                operating_threshold=d.get("operating_threshold"),
            )
            return Response(EvaluationSerializer(evaluation).data, status=status.HTTP_202_ACCEPTED)
        rows = evaluation_jobs.evaluations_for(version, request.user).select_related(
            "project", "dataset_version"
        )
        page = self.paginate_queryset(rows)
        serializer = EvaluationSerializer(page if page is not None else rows, many=True)
        if page is not None:
            return self.get_paginated_response(serializer.data)
        return Response(serializer.data)

    @extend_schema(
        responses=EvaluationSerializer,
        parameters=[OpenApiParameter("evaluation_id", int, OpenApiParameter.PATH)],
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"evaluations/(?P<evaluation_id>[0-9]+)",
        url_name="evaluation",
    )
    def evaluation(self, request, pk=None, evaluation_id=None):
        version = self.get_object()
        found = evaluation_jobs.evaluation_or_404(version, request.user, evaluation_id)
        return Response(EvaluationSerializer(found).data)
