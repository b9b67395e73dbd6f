from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from annotation_server.reading import assist, services
from annotation_server.reading.api.serializers import (
    CaseLabelSerializer,
    CaseProbabilitySerializer,
    DeleteFindingSerializer,
    DispositionSerializer,
    EditedProposalSerializer,
    FindingSerializer,
    HeartbeatSerializer,
    ProposalSerializer,
    ReadingTaskSerializer,
    SubmitSerializer,
)
from annotation_server.reading.models import (
    CaseLabel,
    CaseProbability,
    Finding,
    Proposal,
    ProposalDisposition,
    ReadingTask,
)


class ProposalActions:
    """Model proposals of a read (mixed into ReadingTaskViewSet): the task's
    reader sees those ProposalQuerySet.for_task allows and decides each one
    (accept, accept edited, reject); others who may see the read see the case's
    proposals visible to them."""

    @extend_schema(request=None, responses=ProposalSerializer(many=True))
    @action(detail=True, methods=["get"], serializer_class=ProposalSerializer)
    def proposals(self, request, pk=None):
        task = self.get_object()
        if task.reader_id == request.user.pk:
            rows = Proposal.objects.for_task(task)
        else:
            rows = Proposal.objects.visible_to(request.user).filter(case_id=task.case_id)
        rows = rows.select_related("model_version").order_by("-score", "id")
        decided = dict(
            ProposalDisposition.objects.filter(task=task).values_list("proposal_id", "action")
        )
        context = {**self.get_serializer_context(), "dispositions": decided}
        return Response(ProposalSerializer(rows, many=True, context=context).data)

    @extend_schema(request=None, responses=CaseProbabilitySerializer(many=True))
    @action(
        detail=True,
        methods=["get"],
        url_path="case-probabilities",
        url_name="case-probabilities",
        serializer_class=CaseProbabilitySerializer,
    )
    def case_probabilities(self, request, pk=None):
        """The case-level estimates of models (e.g. a radiograph's quality classes)
        shown to this read, as proposals are."""
        task = self.get_object()
        if task.reader_id == request.user.pk:
            rows = CaseProbability.objects.for_task(task)
        else:
            rows = CaseProbability.objects.visible_to(request.user).filter(
                case_id=task.case_id, current=True
            )
        rows = rows.select_related("model_version").order_by("model_version__name", "-id")
        return Response(CaseProbabilitySerializer(rows, many=True).data)

    def _decided(self, disposition, http_status=status.HTTP_201_CREATED):
        return Response(DispositionSerializer(disposition).data, status=http_status)

    @extend_schema(request=None, responses=DispositionSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path=r"proposals/(?P<proposal_id>\d+)/accept",
        url_name="proposal-accept",
        serializer_class=DispositionSerializer,
    )
    def accept_proposal(self, request, pk=None, proposal_id=None):
        return self._decided(assist.accept(self.get_object(), int(proposal_id), request.user))

    @extend_schema(request=EditedProposalSerializer, responses=DispositionSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path=r"proposals/(?P<proposal_id>\d+)/accept-edited",
        url_name="proposal-edit",
        serializer_class=EditedProposalSerializer,
    )
    def accept_edited_proposal(self, request, pk=None, proposal_id=None):
        body = EditedProposalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        disposition = assist.accept_edited(
            self.get_object(),
            int(proposal_id),
            request.user,
            geometry=data["geometry"],
            finding_type=data.get("finding_type"),
            attributes=data.get("attributes"),
        )
        return self._decided(disposition)

    @extend_schema(request=None, responses=DispositionSerializer)
    @action(
        detail=True,
        methods=["post"],
        url_path=r"proposals/(?P<proposal_id>\d+)/reject",
        url_name="proposal-reject",
        serializer_class=DispositionSerializer,
    )
    def reject_proposal(self, request, pk=None, proposal_id=None):
        return self._decided(assist.reject(self.get_object(), int(proposal_id), request.user))


class ReadingTaskViewSet(ProposalActions, viewsets.ReadOnlyModelViewSet):
    """Reads visible to you: your own, and others' only where the protocol allows."""

    serializer_class = ReadingTaskSerializer
    filterset_fields = ["state", "phase", "case"]

    def get_queryset(self):
        return (
            ReadingTask.objects.visible_to(self.request.user)
            .select_related("case__project", "reader__profile")
            .order_by("id")
        )

    @extend_schema(request=None, responses=ReadingTaskSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        task = services.start(self.get_object(), request.user)
        return Response(self.get_serializer(task).data)

    @extend_schema(request=SubmitSerializer, responses=ReadingTaskSerializer)
    @action(detail=True, methods=["post"], serializer_class=SubmitSerializer)
    def submit(self, request, pk=None):
        body = SubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = services.submit(
            self.get_object(),
            request.user,
            expected_version=body.validated_data.get("version"),
            active_seconds=body.validated_data.get("active_seconds"),
        )
        return Response(ReadingTaskSerializer(task, context=self.get_serializer_context()).data)

    @extend_schema(
        request=HeartbeatSerializer,
        responses=inline_serializer(
            "ActiveSeconds", {"active_seconds": serializers.IntegerField()}
        ),
    )
    @action(detail=True, methods=["post"], serializer_class=HeartbeatSerializer)
    def heartbeat(self, request, pk=None):
        """The workstation reports active reading time (seconds since its last report)."""
        body = HeartbeatSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = services.record_active_time(
            self.get_object(), request.user, body.validated_data["seconds"]
        )
        return Response({"active_seconds": task.active_seconds})

    @action(
        detail=True,
        methods=["get", "put"],
        url_path="case-label",
        serializer_class=CaseLabelSerializer,
    )
    def case_label(self, request, pk=None):
        task = self.get_object()
        if request.method == "GET":
            label = CaseLabel.objects.visible_to(request.user).filter(task=task).first()
            return Response(
                CaseLabelSerializer(label).data
                if label
                else {"values": {}, "version": 0, "updated_at": None}
            )
        body = CaseLabelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        label = services.save_case_label(
            task,
            request.user,
            body.validated_data["values"],
            expected_version=body.validated_data.get("version"),
        )
        return Response(CaseLabelSerializer(label).data)


class FindingViewSet(
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.ReadOnlyModelViewSet,
):
    """Findings of the reads visible to you. Writes go to your own open reads only;
    an update or delete must carry the version you edited (409 if it is stale)."""

    serializer_class = FindingSerializer
    filterset_fields = {
        "task": ["exact"],
        "task__case": ["exact"],
        "finding_type": ["exact"],
        "source": ["exact"],
    }

    def get_queryset(self):
        return (
            Finding.objects.visible_to(self.request.user)
            .select_related("task__case__project", "task__reader__profile")
            .order_by("id")
        )

    def create(self, request, *args, **kwargs):
        body = self.get_serializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        task = get_object_or_404(ReadingTask.objects.visible_to(request.user), pk=data["task"].pk)
        uid = data.get("uid")
        with transaction.atomic():
            if uid is not None:
                # The read's row lock first (save_finding takes it too): a second
                # create of this uid sent at the same moment (another tab restoring
                # this one's unsaved buffer, a retry) waits here, then finds the first
                # one below instead of inserting the uid twice (IntegrityError, 500).
                ReadingTask.objects.select_for_update().get(pk=task.pk)
                existing = Finding.objects.filter(uid=uid).select_related("task").first()
                if existing is not None:
                    if existing.task_id != task.pk:
                        return Response(
                            {"detail": "That finding id is taken.", "code": "uid_taken"},
                            status=status.HTTP_409_CONFLICT,
                        )
                    # A retried create: the first one arrived, nothing changes.
                    return Response(self.get_serializer(existing).data, status=status.HTTP_200_OK)
            finding = services.save_finding(
                task,
                request.user,
                finding_type=data["finding_type"],
                geometry=data["geometry"],
                attributes=data.get("attributes", {}),
                source=data.get("source", "manual"),
            )
            if uid is not None:
                Finding.objects.filter(pk=finding.pk).update(uid=uid)
                finding.uid = uid
        return Response(self.get_serializer(finding).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        finding = self.get_object()
        body = self.get_serializer(finding, data=request.data, partial=kwargs.get("partial"))
        body.is_valid(raise_exception=True)
        data = body.validated_data
        with transaction.atomic():
            updated = services.save_finding(
                finding.task,
                request.user,
                finding=finding,
                finding_type=data.get("finding_type", finding.finding_type),
                geometry=data.get("geometry", finding.geometry),
                attributes=data.get("attributes", finding.attributes),
                source=data.get("source", finding.source),
                expected_version=data.get("version"),
            )
        return Response(self.get_serializer(updated).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "version", OpenApiTypes.INT, description="the version you deleted (409 if stale)"
            )
        ],
        responses={204: None},
    )
    def destroy(self, request, *args, **kwargs):
        finding = self.get_object()
        version = request.query_params.get("version")
        if version in (None, "") and isinstance(request.data, dict):
            version = request.data.get("version")
        body = DeleteFindingSerializer(data={} if version in (None, "") else {"version": version})
        body.is_valid(raise_exception=True)  # not a number: 400 with the field, not 500
        services.delete_finding(
            finding, request.user, expected_version=body.validated_data.get("version")
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
