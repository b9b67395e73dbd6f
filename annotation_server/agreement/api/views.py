"""REST: GET /api/v1/projects/<slug>/agreement/ the current report (JSON, the
shape of report.schema.json); POST queues its computation (202 with the job)."""

from __future__ import annotations

from django.http import Http404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.agreement import services
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job


class AgreementReportView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})  # report.schema.json describes it
    def get(self, request, slug: str):
        project = services.project_for_figures(request, slug)
        row = services.latest(project)
        if row is None:
            raise Http404(_("No agreement report has been computed for this project yet."))
        report = services.decorate(row.report, services.settings_for(project).flag_below)
        report["stale"] = row.fingerprint != services.fingerprint(project)
        return Response(report)

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT})
    def post(self, request, slug: str):
        project = services.project_for_figures(request, slug)
        running = (
            Job.objects.filter(project=project, kind="agreement.compute")
            .exclude(state__in=Job.FINISHED)
            .first()
        )
        job = running or jobs.enqueue(
            "agreement.compute",
            project=project,
            user=request.user,
            params={"project_id": project.pk},
        )
        return Response(
            {"job": job.pk, "state": job.state, "url": f"/api/v1/jobs/{job.pk}/"},
            status=status.HTTP_202_ACCEPTED,
        )
