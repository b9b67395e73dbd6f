from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from annotation_server.projects.api.console import ProjectConsoleMixin
from annotation_server.projects.api.serializers import CaseSerializer, ProjectSerializer
from annotation_server.projects.models import Case, Project
from annotation_server.projects.permissions import MANAGE, has_project_perm
from annotation_server.projects.services import case_state_counts, reader_task_counts


class ProjectViewSet(ProjectConsoleMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = ProjectSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return Project.objects.visible_to(self.request.user).select_related(
            "label_schema", "protocol"
        )

    @extend_schema(
        responses=inline_serializer(
            "ProjectProgress",
            {
                "mine": serializers.DictField(
                    child=serializers.IntegerField(),
                    allow_null=True,
                    help_text="your reads: done / assigned (null if you read none here)",
                ),
                "cases": serializers.DictField(
                    child=serializers.IntegerField(),
                    required=False,
                    help_text="managers: cases per state",
                ),
            },
        )
    )
    @action(detail=True)
    def progress(self, request, slug=None):
        """Managers: cases per state. Everyone: their own reads done / assigned."""
        project = self.get_object()
        body = {"mine": reader_task_counts(request.user, [project.pk]).get(project.pk)}
        if has_project_perm(request.user, project, MANAGE):
            body["cases"] = case_state_counts([project.pk])[project.pk]
        return Response(body)


class CaseViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CaseSerializer
    filterset_fields = ["state", "qc_status"]

    def get_queryset(self):
        qs = Case.objects.visible_to(self.request.user).select_related("project", "site", "series")
        project = self.request.query_params.get("project")
        if project:
            qs = qs.filter(project__slug=project)
        return qs
