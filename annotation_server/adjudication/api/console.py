"""REST for the manager's console of the adjudication app (managers of the
project only; everyone else gets 404):

GET  /api/v1/projects/{slug}/cases/{id}/reference/         the reference standard page's data
POST /api/v1/projects/{slug}/cases/{id}/reference/reopen/  {"ref_keys": [...], "reason": ...}
POST /api/v1/projects/{slug}/cases/{id}/force-settle/      {"reason": ...}
POST /api/v1/projects/{slug}/arbitration/reassign/         {"task", "arbitrator", "reason"}
GET  /api/v1/projects/{slug}/arbitration/stuck/            open tasks, who could take them
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.adjudication import console
from annotation_server.adjudication.api.serializers import ArbitrationTaskSerializer
from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.adjudication.services import arbitration
from annotation_server.adjudication.services import console as services
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_hide


def _case(request, slug: str, case_id: int) -> Case:
    project = managed_project_or_hide(request.user, slug)
    return get_object_or_404(
        Case.objects.select_related("project__protocol"), pk=case_id, project=project
    )


class ReferenceView(APIView):
    """Current reference findings with their revisions, supporting reads, match
    rule and threshold used, arbitration decisions and signatures."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str, case_id: int):
        case = _case(request, slug, case_id)
        return Response(console.reference_standard(case, request.user))


class ReopenRefsSerializer(serializers.Serializer):
    ref_keys = serializers.ListField(child=serializers.CharField(), allow_empty=False)
    reason = serializers.CharField(allow_blank=True, default="")


class ReferenceReopenView(APIView):
    """Re-arbitrate the given reference findings: a new round; the signed
    decisions write new revisions, the old ones stay as history."""

    @extend_schema(
        request=ReopenRefsSerializer, responses={201: ArbitrationTaskSerializer(many=True)}
    )
    def post(self, request, slug: str, case_id: int):
        case = _case(request, slug, case_id)
        body = ReopenRefsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        clusters = console.clusters_for_ref_keys(case, body.validated_data["ref_keys"])
        if not clusters:
            raise ValidationError(
                {"ref_keys": ["No reference finding of this case has these keys."]}
            )
        tasks = arbitration.reopen(
            case,
            by=request.user,
            reason=body.validated_data["reason"],
            clusters=clusters,
            labels=[],
        )
        return Response(
            ArbitrationTaskSerializer(tasks, many=True, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, default="")


class ForceSettleView(APIView):
    """Settle a case in reading now, on the reads submitted so far (open drafts
    are discarded, counted in the audit log)."""

    @extend_schema(request=ReasonSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, case_id: int):
        case = _case(request, slug, case_id)
        body = ReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        settlement = services.force_settle(
            case, by=request.user, reason=body.validated_data["reason"]
        )
        case.refresh_from_db()
        return Response(
            {
                "case": case.pk,
                "state": case.state,
                "settlement": settlement.pk,
                "outcome": settlement.outcome,
                "phase": settlement.phase,
            }
        )


class ReassignArbitrationSerializer(serializers.Serializer):
    task = serializers.IntegerField()
    arbitrator = serializers.IntegerField()
    reason = serializers.CharField(allow_blank=True, default="")


class ReassignArbitrationView(APIView):
    """Move an unsigned arbitration task (sole, first, second or tie-break) to
    another eligible arbitrator; the previous draft is discarded (audited)."""

    @extend_schema(request=ReassignArbitrationSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str):
        project = managed_project_or_hide(request.user, slug)
        body = ReassignArbitrationSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        task = get_object_or_404(ArbitrationTask, pk=data["task"], case__project=project)
        person = get_object_or_404(get_user_model(), pk=data["arbitrator"])
        try:
            task = services.reassign_arbitration(
                task, person, by=request.user, reason=data["reason"]
            )
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from None
        return Response(
            {
                "task": task.pk,
                "case": task.case.code,
                "role": task.role,
                "round": task.round,
                "arbitrator": person.profile.pseudonym,
                "state": task.state,
            },
        )


class StuckArbitrationView(APIView):
    """Open arbitration tasks of the project: who holds each, whether they left,
    and who could take it over."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        project = managed_project_or_hide(request.user, slug)
        rows = services.stuck_arbitrations(project)
        return Response(
            [
                {
                    **{k: v for k, v in row.items() if k not in ("task", "candidates")},
                    "candidates": [
                        {"id": u.pk, "pseudonym": u.profile.pseudonym} for u in row["candidates"]
                    ],
                }
                for row in rows
            ]
        )
