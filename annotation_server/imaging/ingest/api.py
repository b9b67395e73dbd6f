"""REST: POST /api/v1/projects/{slug}/imports/ with multipart files -> the import job."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.accounts.models import Site
from annotation_server.imaging.ingest.uploads import queue_import
from annotation_server.jobs.api.serializers import JobSerializer
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, has_project_perm

IMPORT_UPLOAD = inline_serializer(
    "ImportUpload",
    {
        "files": serializers.ListField(child=serializers.FileField()),
        "paths": serializers.ListField(child=serializers.CharField(), required=False),
        "site": serializers.CharField(required=False),
    },
)


class RevealSerializer(serializers.Serializer):
    replacement = serializers.CharField()
    reason = serializers.CharField()
    kind = serializers.CharField(required=False, allow_blank=True)


REVEAL_RESPONSE = inline_serializer(
    "RevealResponse",
    {
        "replacement": serializers.CharField(),
        "originals": serializers.ListField(child=serializers.DictField()),
    },
)


class ImportView(APIView):
    """Upload DICOM files or zips (field `files`, repeatable; optional `paths`, the
    relative path of each file, and `site`, a site code). Returns the import job;
    poll /api/v1/jobs/{id}/ for progress and the per-file report."""

    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": IMPORT_UPLOAD}, responses={202: JobSerializer})
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
            code = request.data["site"]
            # NUL cannot reach PostgreSQL (500): no site has such a code
            site = Site.objects.filter(code=code).first() if "\x00" not in code else None
            if site is None:
                raise ValidationError({"site": f"No site with code {request.data['site']!r}."})
        names = paths if len(paths) == len(files) else None
        job = queue_import(project, files, user=request.user, site=site, names=names)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class RevealView(APIView):
    """Look up the original identifier behind a pseudonym or replacement UID.
    Needs the imaging.view_identity_key permission; every look-up is audited
    with its reason."""

    @extend_schema(request=RevealSerializer, responses=REVEAL_RESPONSE)
    def post(self, request, slug: str):
        from annotation_server.imaging.ingest.keys import reveal
        from annotation_server.imaging.models import IdentityMapping

        project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
        if not request.user.has_perm("imaging.view_identity_key"):
            raise PermissionDenied("Reading original identifiers needs its own permission.")
        # A serializer: a list body or NUL in a value answered 500, now field errors.
        body = RevealSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        replacement, reason = body.validated_data["replacement"], body.validated_data["reason"]
        mappings = IdentityMapping.objects.filter(project=project, replacement=replacement)
        if body.validated_data.get("kind"):
            mappings = mappings.filter(kind=body.validated_data["kind"])
        rows = [
            {"kind": m.kind, "original": reveal(request.user, m, reason=reason)} for m in mappings
        ]
        if not rows:
            raise ValidationError({"replacement": "No identifier maps to that value here."})
        return Response({"replacement": replacement, "originals": rows})
