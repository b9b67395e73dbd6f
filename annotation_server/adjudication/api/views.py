"""Adjudication REST API: clusters, arbitration tasks (drafts, signing), the
reference standard of a case, and the manager's settle / reopen actions."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from annotation_server.adjudication import permissions, services
from annotation_server.adjudication.api.serializers import (
    ArbitrationTaskDetailSerializer,
    ArbitrationTaskSerializer,
    ClusterSerializer,
    DecisionsSerializer,
    ReferenceFindingSerializer,
    ReferenceLabelsSerializer,
    ReopenSerializer,
    SettlementSerializer,
    SignSerializer,
)
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.projects.models import Case

CASE_ADJUDICATION = inline_serializer(
    "CaseAdjudication",
    {
        "case": serializers.IntegerField(),
        "code": serializers.CharField(),
        "state": serializers.CharField(),
        "series": serializers.IntegerField(allow_null=True),
        "settlement": SettlementSerializer(allow_null=True),
        "clusters": ClusterSerializer(many=True),
        "arbitration_tasks": ArbitrationTaskSerializer(many=True),
        "reference_findings": ReferenceFindingSerializer(many=True),
        "reference_labels": ReferenceLabelsSerializer(many=True),
    },
)
SETTLE_QUEUED = inline_serializer(
    "SettleQueued", {"job": serializers.IntegerField(), "kind": serializers.CharField()}
)


class ArbitrationTaskViewSet(viewsets.ReadOnlyModelViewSet):
    """Arbitration tasks visible to you (?mine=true: only yours). The detail holds
    everything one task needs: clusters with anonymised reads, label disputes,
    schema, reason codes, your draft decisions and its version."""

    filterset_fields = ["state", "role", "round", "case"]

    def get_queryset(self):
        qs = ArbitrationTask.objects.visible_to(self.request.user).select_related(
            "case__project__label_schema"
        )
        if self.request.query_params.get("mine") in ("1", "true", "yes"):
            qs = qs.filter(arbitrator=self.request.user)
        return qs.order_by("state", "assigned_at", "id")

    def get_serializer_class(self):
        if self.action == "list":
            return ArbitrationTaskSerializer
        return ArbitrationTaskDetailSerializer

    @extend_schema(request=DecisionsSerializer, responses=ArbitrationTaskDetailSerializer)
    @action(detail=True, methods=["put"], serializer_class=DecisionsSerializer)
    def decisions(self, request, pk=None):
        """Save the draft: {"decisions": {...}, "version": n}; 409 if n is stale."""
        task = self.get_object()
        body = DecisionsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.save_decisions(
            task,
            request.user,
            body.validated_data["decisions"],
            expected_version=body.validated_data["version"],
        )
        return Response(
            ArbitrationTaskDetailSerializer(result, context=self.get_serializer_context()).data
        )

    @extend_schema(request=SignSerializer, responses=ArbitrationTaskDetailSerializer)
    @action(detail=True, methods=["post"], serializer_class=SignSerializer)
    def sign(self, request, pk=None):
        """Sign the saved decisions with your password: {"password": ..., "version": n}."""
        task = self.get_object()
        body = SignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.sign(
            task,
            request.user,
            body.validated_data["password"],
            expected_version=body.validated_data["version"],
            request=request,
        )
        return Response(
            ArbitrationTaskDetailSerializer(result, context=self.get_serializer_context()).data
        )


class ClusterViewSet(viewsets.ReadOnlyModelViewSet):
    """Clusters of the cases you manage or arbitrate, with dispute reasons and the
    anonymised member findings. Filter by ?case= and ?verdict=."""

    serializer_class = ClusterSerializer
    filterset_fields = ["case", "verdict", "finding_type"]

    def get_queryset(self):
        return (
            Cluster.objects.visible_to(self.request.user)
            .prefetch_related("findings__task__case__project", "findings__task__reader__profile")
            .order_by("case_id", "number")
        )


class ReferenceFindingViewSet(viewsets.ReadOnlyModelViewSet):
    """The reference standard: every revision (?is_current=true for the current
    ones, ?ref_key= for one finding's history)."""

    serializer_class = ReferenceFindingSerializer
    filterset_fields = ["case", "is_current", "ref_key", "status", "decision"]

    def get_queryset(self):
        return (
            ReferenceFinding.objects.visible_to(self.request.user)
            .select_related("arbitration_task")
            .prefetch_related(
                "supporting_findings__task__case__project",
                "supporting_findings__task__reader__profile",
            )
            .order_by("case_id", "ref_key", "revision")
        )


class CaseAdjudicationViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """/adjudication/{case id}/: a case's settlement, clusters, visible tasks and
    reference standard (current and history) in one response; managers can
    settle again (after a failure) and reopen for re-arbitration."""

    serializer_class = ReopenSerializer

    def get_queryset(self):
        return Case.objects.visible_to(self.request.user).select_related("project")

    @extend_schema(responses=CASE_ADJUDICATION)
    def retrieve(self, request, pk=None):
        case = self.get_object()
        user = request.user
        ctx = self.get_serializer_context()
        settlement = Settlement.objects.visible_to(user).filter(case=case).first()
        clusters = (
            Cluster.objects.visible_to(user)
            .filter(case=case)
            .prefetch_related("findings__task__case__project", "findings__task__reader__profile")
        )
        refs = (
            ReferenceFinding.objects.visible_to(user)
            .filter(case=case)
            .order_by("ref_key", "revision")
        )
        labels = ReferenceLabels.objects.visible_to(user).filter(case=case).order_by("revision")
        tasks = ArbitrationTask.objects.visible_to(user).filter(case=case).order_by("round", "role")
        return Response(
            {
                "case": case.pk,
                "code": case.code,
                "state": case.state,
                "series": case.series_id,
                "settlement": SettlementSerializer(settlement, context=ctx).data
                if settlement
                else None,
                "clusters": ClusterSerializer(clusters, many=True, context=ctx).data,
                "arbitration_tasks": ArbitrationTaskSerializer(tasks, many=True, context=ctx).data,
                "reference_findings": ReferenceFindingSerializer(refs, many=True, context=ctx).data,
                "reference_labels": ReferenceLabelsSerializer(labels, many=True).data,
            }
        )

    def _managed_case(self, pk):
        # DRF's lookup: a pk that is not a number is 404, not a ValueError (500)
        case = self.get_object()
        if not permissions.can_manage(self.request.user, case):
            raise PermissionDenied("Only the project's managers can do this.")
        return case

    @extend_schema(request=None, responses={202: SETTLE_QUEUED})
    @action(detail=True, methods=["post"])
    def settle(self, request, pk=None):
        """Queue matching and settling for a case whose reads are all in."""
        case = self._managed_case(pk)
        job = services.reads_complete(case, request.user)
        return Response({"job": job.pk, "kind": job.kind}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ReopenSerializer, responses={201: ArbitrationTaskSerializer(many=True)})
    @action(detail=True, methods=["post"], serializer_class=ReopenSerializer)
    def reopen(self, request, pk=None):
        """Re-arbitrate: {"reason": ..., "clusters": [ids]?, "labels": [keys]?}."""
        case = self._managed_case(pk)
        body = ReopenSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        result = services.reopen(
            case,
            by=request.user,
            reason=data["reason"],
            clusters=data.get("clusters"),
            labels=data.get("labels"),
        )
        return Response(
            ArbitrationTaskSerializer(
                result, many=True, context=self.get_serializer_context()
            ).data,
            status=status.HTTP_201_CREATED,
        )
