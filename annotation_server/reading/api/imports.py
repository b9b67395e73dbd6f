"""REST for bringing reads in and out (managers only):

POST /api/v1/projects/{slug}/reads/import/   multipart: `files` (repeatable),
     optional `format` (lidc-xml | refset-json; default from each file's name).
     Answers 200 with every file's report; a refused file imported nothing.
GET  /api/v1/projects/{slug}/reads/export/   the project's submitted reads as
     RefSet JSON (the format the import reads back).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.audit import services as audit
from annotation_server.projects.permissions import managed_project_or_404
from annotation_server.reading.importers.services import FORMATS, export_reads, import_files

MAX_FILES = 200


class ImportReadsUpload(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField())
    format = serializers.ChoiceField(choices=FORMATS, required=False)


class ImportReadsView(APIView):
    """Import reads as submitted reads; one transaction per file."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": ImportReadsUpload}, responses={200: OpenApiTypes.OBJECT}
    )
    def post(self, request, slug: str):
        project = managed_project_or_404(request, slug)
        files = request.FILES.getlist("files")
        if not files:
            raise ValidationError({"files": "Attach at least one file."})
        if len(files) > MAX_FILES:
            raise ValidationError({"files": f"At most {MAX_FILES} files at a time."})
        fmt = request.data.get("format") or None
        if fmt is not None and fmt not in FORMATS:
            raise ValidationError({"format": f"One of {', '.join(FORMATS)}."})
        reports = import_files(
            project, [(f.name, f.read()) for f in files], fmt, actor=request.user
        )
        return Response(
            {
                "imported": sum(r.imported for r in reports),
                "refused": sum(not r.imported for r in reports),
                "files": [r.as_dict() for r in reports],
            }
        )


class ExportReadsView(APIView):
    """The project's submitted reads in RefSet JSON, readers as pseudonyms."""

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request, slug: str):
        project = managed_project_or_404(request, slug)
        document = export_reads(project)
        audit.record(
            "reads.exported",
            actor=request.user,
            obj=project,
            project_id=project.pk,
            data={
                "cases": len(document["cases"]),
                "reads": sum(len(c["reads"]) for c in document["cases"]),
            },
        )
        return Response(document)
