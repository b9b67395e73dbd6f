"""REST: /api/v1/writeback-destinations/ and /api/v1/outbox-items/, for the
managers of a project (other users see none; a project they do not manage is
refused when creating).

- destinations: list, create ({project: slug, name, kind, connection}), read;
  POST {id}/mark-inside/ {inside: bool}; POST {id}/send-case/ {case: code}
  (202 with the job that builds and queues the case's reference, and the reads or
  model proposals its protocol writes back; follow it at /api/v1/jobs/{id}/: its
  result names the items queued); POST {id}/send-version/ {version: "1.0.0"}
  (202 with the job that builds and queues it).
- items: list (filters: project slug, destination, case code, status), read;
  POST {id}/retry/, POST {id}/cancel/.
"""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from annotation_server.audit import services as audit
from annotation_server.imaging.models import PacsConnection
from annotation_server.jobs import services as jobs
from annotation_server.jobs.api.serializers import JobSerializer
from annotation_server.outbox import services
from annotation_server.outbox.models import Destination, OutboxItem
from annotation_server.projects.models import Case, Project
from annotation_server.projects.permissions import MANAGE, project_ids


class DestinationSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())
    connection = serializers.PrimaryKeyRelatedField(queryset=PacsConnection.objects.all())
    transport = serializers.CharField(read_only=True)
    address = serializers.CharField(source="connection.address", read_only=True)

    class Meta:
        model = Destination
        fields = [
            "id",
            "project",
            "name",
            "kind",
            "connection",
            "address",
            "transport",
            "inside_hospital",
            "marked_at",
            "created_at",
        ]
        read_only_fields = ["inside_hospital", "marked_at", "created_at"]

    def validate(self, data):
        project, connection = data["project"], data["connection"]
        if project.pk not in project_ids(self.context["request"].user, MANAGE):
            raise PermissionDenied(_("Only the project's dataset managers can do this."))
        if connection.project_id != project.pk:
            raise ValidationError({"connection": _("This PACS connection is another project's.")})
        if Destination.objects.filter(project=project, name=data["name"].strip()).exists():
            raise ValidationError(
                {"name": _("This project already has a destination of this name.")}
            )
        data["name"] = data["name"].strip()
        return data


class OutboxItemSerializer(serializers.ModelSerializer):
    case = serializers.SlugRelatedField(slug_field="code", read_only=True)
    dataset_version = serializers.SlugRelatedField(slug_field="version", read_only=True)

    class Meta:
        model = OutboxItem
        fields = [
            "id",
            "destination",
            "transport",
            "status",
            "carries",
            "case",
            "reference_digest",
            "dataset_version",
            "sop_class_uid",
            "sop_instance_uid",
            "series_uid",
            "sha256",
            "size_bytes",
            "attempts",
            "last_error",
            "next_attempt_at",
            "delivered_at",
            "job",
            "created_at",
        ]
        read_only_fields = fields


class _Managed:
    def managed(self):
        return project_ids(self.request.user, MANAGE)


class DestinationViewSet(_Managed, viewsets.ModelViewSet):
    """Write-back destinations of the projects you manage."""

    serializer_class = DestinationSerializer
    http_method_names = ["get", "post", "head", "options"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Destination.objects.none()
        return Destination.objects.filter(project_id__in=self.managed()).select_related(
            "project", "connection"
        )

    def perform_create(self, serializer):
        with transaction.atomic():
            destination = serializer.save(created_by=self.request.user)
            audit.record(
                "outbox.destination_added",
                actor=self.request.user,
                obj=destination,
                project_id=destination.project_id,
                data={
                    "name": destination.name,
                    "kind": destination.kind,
                    "address": destination.connection.address,
                },
            )

    @action(detail=True, methods=["post"], url_path="mark-inside")
    def mark_inside(self, request, pk=None):
        destination = self.get_object()
        if destination.kind != Destination.Kind.HOSPITAL:
            raise ValidationError(
                {"inside": _("Only a hospital PACS is marked inside the hospital.")}
            )
        inside = request.data.get("inside")
        if not isinstance(inside, bool):
            raise ValidationError({"inside": _("true or false.")})
        services.mark_inside_hospital(destination, request.user, inside)
        return Response(DestinationSerializer(destination, context={"request": request}).data)

    @action(detail=True, methods=["post"], url_path="send-case")
    def send_case(self, request, pk=None):
        destination = self.get_object()
        code = request.data.get("case")
        if not isinstance(code, str) or not code.strip():
            raise ValidationError({"case": _("A case code.")})
        case = Case.objects.filter(project_id=destination.project_id, code=code.strip()).first()
        if case is None:
            raise ValidationError({"case": _("No case %(code)s in this project.") % {"code": code}})
        job = services.send_case(case, destination, request.user)
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"], url_path="send-version")
    def send_version(self, request, pk=None):
        from annotation_server.datasets.models import DatasetVersion

        destination = self.get_object()
        name = request.data.get("version")
        version = (
            DatasetVersion.objects.filter(
                project_id=destination.project_id, version=name, frozen=True
            ).first()
            if isinstance(name, str)
            else None
        )
        if version is None:
            raise ValidationError({"version": _("No frozen version of that name here.")})
        if destination.kind != Destination.Kind.RESEARCH:
            raise ValidationError(
                {"destination": _("A frozen version goes to a research archive only.")}
            )
        job = jobs.enqueue(
            "outbox.queue_version",
            params={"version": version.pk, "destination": destination.pk},
            project=destination.project,
            user=request.user,
        )
        return Response(JobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class OutboxItemViewSet(_Managed, viewsets.ReadOnlyModelViewSet):
    """Outbound objects of the projects you manage, newest first."""

    serializer_class = OutboxItemSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return OutboxItem.objects.none()
        items = OutboxItem.objects.filter(project_id__in=self.managed()).select_related(
            "case", "dataset_version"
        )
        params = self.request.query_params
        if params.get("project"):
            items = items.filter(project__slug=params["project"])
        if params.get("destination", "").isdigit():
            items = items.filter(destination_id=int(params["destination"]))
        if params.get("case"):
            items = items.filter(case__code=params["case"])
        if params.get("status"):
            items = items.filter(status=params["status"])
        return items.order_by("-created_at", "-pk")

    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        item = services.retry(self.get_object(), request.user)
        return Response(OutboxItemSerializer(item).data)

    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        item = services.cancel(self.get_object(), request.user)
        return Response(OutboxItemSerializer(item).data)


ROUTES = [
    ("writeback-destinations", DestinationViewSet, "writeback-destination"),
    ("outbox-items", OutboxItemViewSet, "outbox-item"),
]
