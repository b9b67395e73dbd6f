from django.db.models import Q
from rest_framework import viewsets

from annotation_server.jobs.api.serializers import JobSerializer
from annotation_server.jobs.models import Job
from annotation_server.projects.permissions import MANAGE, project_ids


class JobViewSet(viewsets.ReadOnlyModelViewSet):
    """Background jobs you started, and those of projects you manage."""

    serializer_class = JobSerializer
    filterset_fields = ["state", "kind", "project"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Job.objects.none()
        user = self.request.user
        if user.is_superuser:
            return Job.objects.all()
        return Job.objects.filter(Q(created_by=user) | Q(project_id__in=project_ids(user, MANAGE)))
