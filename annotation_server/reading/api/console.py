"""REST for the manager's console actions of the reading app (managers only;
everyone else gets 404):

POST /api/v1/projects/{slug}/cases/{id}/withdraw/  {"reason": ...}
POST /api/v1/projects/{slug}/cases/{id}/return/    {"reason": ...}
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_hide
from annotation_server.quality.services import open_flags
from annotation_server.reading import console


class CaseReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, default="")


def _case(request, slug: str, case_id: int) -> Case:
    project = managed_project_or_hide(request.user, slug)
    return get_object_or_404(Case, pk=case_id, project=project)


def _answer(case: Case) -> dict:
    flags = open_flags([case.pk]).get(case.pk, [])
    return {
        "case": case.pk,
        "code": case.code,
        "state": case.state,
        "flags": [{"kind": f.kind, "reason": f.reason, "raised_at": f.raised_at} for f in flags],
    }


class WithdrawView(APIView):
    """Take the case out of reading (back to QC, flagged "withdrawn", reads kept)."""

    @extend_schema(request=CaseReasonSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, case_id: int):
        case = _case(request, slug, case_id)
        body = CaseReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = console.withdraw_case(case, by=request.user, reason=body.validated_data["reason"])
        return Response(_answer(case))


class ReturnView(APIView):
    """Undo a withdrawal: the case goes back to reading (or waits for assignment)."""

    @extend_schema(request=CaseReasonSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, case_id: int):
        case = _case(request, slug, case_id)
        body = CaseReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        case = console.return_to_reading(
            case, by=request.user, reason=body.validated_data["reason"]
        )
        return Response(_answer(case))
