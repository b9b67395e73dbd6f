"""REST: POST /api/v1/projects/{slug}/imports/ with multipart files -> the import job."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.accounts.models import Site
from annotation_server.imaging.ingest.uploads import queue_import
from annotation_server.jobs.api.serializers import JobSerializer
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, has_project_perm


class ImportView(APIView):
    """Upload DICOM files or zips (field `files`, repeatable; optional `paths`, the
    relative path of each file, and `site`, a site code). Returns the import job;
    poll /api/v1/jobs/{id}/ for progress and the per-file report."""

    parser_classes = [MultiPartParser]

    def post(self, request, slug: str):
        project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
        if not has_project_perm(request.user, project, MANAGE):
            raise PermissionDenied("Only the project's dataset managers can import.")
        files = request.FILES.getlist("files")
        if not files:
            raise ValidationError({"files": "Attach at least one file, folder or zip."})
        paths = request.data.getlist("paths") if hasattr(request.data, "getlist") else []
        site = None
        if request.data.get("site"):
            site = Site.objects.filter(code=request.data["site"]).first()
            if site is None:
                raise ValidationError({"site": f"No site with code {request.data['site']!r}."})
        names = paths if len(paths) == len(files) else None
        job = queue_import(project, files, user=request.user, site=site, names=names)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)
