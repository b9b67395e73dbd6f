"""REST for the learning loop of the assist models (the project's dataset
managers; readers and arbitrators of the project get 403, everyone else 404):

GET  /api/v1/projects/{slug}/assist-models/                   versions, cards, comparisons
POST /api/v1/projects/{slug}/assist-models/finetune/          {"model", "epochs"?} -> job
POST /api/v1/projects/{slug}/assist-models/{id}/promote/      {"reason"?}
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.jobs.api.serializers import JobSerializer
from annotation_server.projects.permissions import managed_project_or_404
from annotation_server.reading import finetune


class FinetuneSerializer(serializers.Serializer):
    model = serializers.ChoiceField(choices=sorted(finetune.FINETUNABLE))
    epochs = serializers.IntegerField(
        min_value=1, max_value=finetune.MAX_EPOCHS, default=finetune.DEFAULT_EPOCHS
    )
    seed = serializers.IntegerField(min_value=0, default=finetune.SPLIT_SEED)


class PromoteSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, default="", max_length=500)


class AssistModelsView(APIView):
    """The model versions of the project (those its fine-tunes made and their
    parents, the committed built-ins, the promoted ones, those that proposed on
    its cases) with their cards, and the held-out comparison of each fine-tune."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        project = managed_project_or_404(request, slug)
        return Response({"versions": finetune.project_versions(project)})


class FinetuneView(APIView):
    """Queue the fine-tune job; poll /api/v1/jobs/{id}/ for its comparison."""

    @extend_schema(request=FinetuneSerializer, responses={202: JobSerializer})
    def post(self, request, slug: str):
        project = managed_project_or_404(request, slug)
        body = FinetuneSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        job = finetune.queue_finetune(
            project, data["model"], epochs=data["epochs"], seed=data["seed"], by=request.user
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class PromoteView(APIView):
    """Make this version the one that runs by default for its model name."""

    @extend_schema(request=PromoteSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, version_id: int):
        project = managed_project_or_404(request, slug)
        body = PromoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        row = finetune.promote(
            project, version_id, by=request.user, reason=body.validated_data["reason"]
        )
        return Response(
            {"id": row.pk, "name": row.name, "version": row.version, "promoted": row.promoted}
        )
