"""REST for assignment (managers only):

GET  /api/v1/projects/{slug}/assignments/           who reads what, per-reader load
POST /api/v1/projects/{slug}/assignments/run/       queue the "projects.assign" job
POST /api/v1/projects/{slug}/assignments/reassign/  {"task": id, "reader": user id}
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.jobs.api.serializers import JobSerializer
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, has_project_perm
from annotation_server.reading import assignment
from annotation_server.reading.models import ReadingTask


def _managed(request, slug: str) -> Project:
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    if not has_project_perm(request.user, project, MANAGE):
        raise PermissionDenied("Only the project's dataset managers see and change assignments.")
    return project


class AssignmentOverviewView(APIView):
    """Per reader (pseudonym): assigned / in progress / submitted / overdue; per
    case its reads with reader pseudonym, phase, state and due date."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        return Response(assignment.overview(_managed(request, slug)))


class AssignmentRunView(APIView):
    """Queue the assignment job; poll /api/v1/jobs/{id}/ for its report."""

    @extend_schema(request=None, responses={202: JobSerializer})
    def post(self, request, slug: str):
        project = _managed(request, slug)
        job = assignment.enqueue_assignment(project, by=request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ReassignSerializer(serializers.Serializer):
    task = serializers.IntegerField()
    reader = serializers.IntegerField()
    reason = serializers.CharField(allow_blank=True, default="")


class ReassignView(APIView):
    """Move an unsubmitted read (blind or review phase) to another eligible
    reader; the previous reader's draft is discarded (audited). A review-phase
    read moves with a copy of the departed reader's blind marks to review."""

    @extend_schema(request=ReassignSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, slug: str):
        project = _managed(request, slug)
        body = ReassignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = get_object_or_404(ReadingTask, pk=body.validated_data["task"], case__project=project)
        reader = get_object_or_404(get_user_model(), pk=body.validated_data["reader"])
        try:
            new = assignment.reassign(
                task, reader, by=request.user, reason=body.validated_data["reason"]
            )
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from None
        return Response(
            {
                "task": new.pk,
                "case": new.case.code,
                "reader": reader.profile.pseudonym,
                "phase": new.phase,
                "due_at": new.due_at,
            },
            status=status.HTTP_201_CREATED,
        )
