"""REST of the manager's console: create and update projects (mixed into
ProjectViewSet), the project's label schema, QC profile and members.

POST  /api/v1/projects/                                   create (needs projects.add_project)
PATCH /api/v1/projects/{slug}/                            fields, protocol, sites, schema
GET   /api/v1/label-schemas/                              stored schemas to choose from
POST  /api/v1/projects/{slug}/schema/                     choose or upload a schema
GET/PUT /api/v1/projects/{slug}/qc-profile/               the QC profile (version bumps)
GET/POST /api/v1/projects/{slug}/members/                 list, add or create accounts
GET/PATCH /api/v1/projects/{slug}/members/{id}/           roles, reader profile
POST  /api/v1/projects/{slug}/members/{id}/deactivate/    remove every role
POST  /api/v1/projects/{slug}/members/{id}/invitation/    a fresh invitation link
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

import qc
import qc.profile
from annotation_server.projects import members as member_services
from annotation_server.projects import services
from annotation_server.projects.api.serializers import (
    DeactivateSerializer,
    LabelSchemaSerializer,
    MemberAddSerializer,
    MemberSerializer,
    MemberUpdateSerializer,
    ProjectSerializer,
    ProjectWriteSerializer,
    QcProfileSerializer,
    SchemaSourceSerializer,
)
from annotation_server.projects.models import LabelSchema, Project
from annotation_server.projects.permissions import can_create_projects, managed_project_or_hide

# ------------------------------------------------------------------ the console (writes)
# Same services and permissions as the pages (projects/views.py): a project's
# dataset managers only, everyone else 404; creating needs "projects.add_project".


def _managed(request, slug: str) -> Project:
    return managed_project_or_hide(request.user, slug)


def _raise_django_validation(exc: DjangoValidationError):
    detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
    raise ValidationError(detail) from None


class ProjectConsoleMixin:
    """create (POST /projects/) and update (PATCH /projects/{slug}/) for ProjectViewSet."""

    @extend_schema(request=ProjectWriteSerializer, responses={201: ProjectSerializer})
    def create(self, request):
        if not can_create_projects(request.user):
            raise PermissionDenied(
                gettext("Creating projects needs the dataset managers' permission.")
            )
        body = ProjectWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        source = data.pop("label_schema", None)
        if not source:
            raise ValidationError({"label_schema": [gettext("Choose or upload a label schema.")]})
        protocol = dict(data.pop("protocol", {}) or {})
        sites = data.pop("sites", [])
        try:
            with transaction.atomic():
                schema = source.get("schema") or services.new_label_schema(
                    key=source["key"],
                    name=source["name"],
                    definition=source["definition"],
                    by=request.user,
                )
                project = services.create_project_by(
                    request.user, values=data, protocol=protocol, sites=sites, label_schema=schema
                )
        except DjangoValidationError as exc:
            _raise_django_validation(exc)
        project = Project.objects.select_related("label_schema", "protocol").get(pk=project.pk)
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ProjectWriteSerializer, responses=ProjectSerializer)
    def partial_update(self, request, slug=None):
        project = _managed(request, slug)
        body = ProjectWriteSerializer(project, data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = dict(body.validated_data)
        source = data.pop("label_schema", None)
        protocol = data.pop("protocol", None)
        sites = data.pop("sites", None)
        try:
            with transaction.atomic():
                services.update_project(project, by=request.user, values=data, sites=sites)
                if protocol:
                    services.update_protocol(project, by=request.user, values=protocol)
                if source:
                    schema = source.get("schema") or services.new_label_schema(
                        key=source["key"],
                        name=source["name"],
                        definition=source["definition"],
                        by=request.user,
                        project=project,
                    )
                    services.set_label_schema(project, schema, by=request.user)
        except DjangoValidationError as exc:
            _raise_django_validation(exc)
        project = Project.objects.select_related("label_schema", "protocol").get(pk=project.pk)
        return Response(ProjectSerializer(project).data)


class LabelSchemaViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Every stored label schema (the shipped ones and those uploaded), newest
    version first: what a project may choose."""

    serializer_class = LabelSchemaSerializer
    queryset = LabelSchema.objects.order_by("key", "-version")


class SchemaView(APIView):
    """POST {"schema_id"} or {"key", "name", "definition"}: the project's label schema
    becomes that one (an upload is stored as a new version, never edited in place).
    Refused (409) once the project's cases are being read."""

    @extend_schema(request=SchemaSourceSerializer, responses=LabelSchemaSerializer)
    def post(self, request, slug: str):
        project = _managed(request, slug)
        body = SchemaSourceSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        source = body.validated_data
        with transaction.atomic():
            schema = source.get("schema") or services.new_label_schema(
                key=source["key"],
                name=source["name"],
                definition=source["definition"],
                by=request.user,
                project=project,
            )
            services.set_label_schema(project, schema, by=request.user)
        return Response(LabelSchemaSerializer(schema).data)


class QcProfileView(APIView):
    """GET the project's QC profile: stored (differences from the defaults of its
    modality and body part), effective, defaults, version. PUT {"profile": {...}}
    replaces the stored profile; its version goes up when it changed."""

    def _body(self, project):
        from annotation_server.projects.forms import applicable_rules, defaults_for

        form_defaults = defaults_for(project)
        data = dict(project.qc_profile or {})
        data.setdefault("base", project.modalities[0] if project.modalities else "")
        data.setdefault("region", project.body_part or None)
        try:
            effective = qc.Profile.from_dict(data).to_dict()
        except (TypeError, ValueError):
            effective = None
        return {
            "profile": project.qc_profile or {},
            "version": project.qc_profile_version,
            "effective": effective,
            "defaults": form_defaults.to_dict(),
            "rules": applicable_rules(project),
        }

    @extend_schema(responses=QcProfileSerializer)
    def get(self, request, slug: str):
        return Response(self._body(_managed(request, slug)))

    @extend_schema(request=QcProfileSerializer, responses=QcProfileSerializer)
    def put(self, request, slug: str):
        project = _managed(request, slug)
        profile = request.data.get("profile") if isinstance(request.data, dict) else None
        if not isinstance(profile, dict):
            raise ValidationError({"profile": [gettext("Give the profile as a JSON object.")]})
        unknown = sorted(set(profile) - set(qc.profile.UNITS) - {"disabled", "rules"})
        if unknown:
            raise ValidationError(
                {
                    "profile": [
                        gettext("Unknown fields: %(fields)s") % {"fields": ", ".join(unknown)}
                    ]
                }
            )
        try:
            services.save_qc_profile(project, profile, by=request.user)
        except DjangoValidationError as exc:
            _raise_django_validation(exc)
        project.refresh_from_db()
        return Response(self._body(project))


class MemberListView(APIView):
    """GET the project's members; POST adds an existing person or creates an
    account (the one-time password or invitation link is in this answer only)."""

    @extend_schema(responses=MemberSerializer(many=True))
    def get(self, request, slug: str):
        project = _managed(request, slug)
        return Response(MemberSerializer(member_services.members(project), many=True).data)

    @extend_schema(request=MemberAddSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, slug: str):
        project = _managed(request, slug)
        body = MemberAddSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        answer: dict = {}
        try:
            with transaction.atomic():
                if data["create"]:
                    if not data.get("username"):
                        raise ValidationError({"username": [gettext("This field is required.")]})
                    account = member_services.create_account(
                        project,
                        by=request.user,
                        username=data["username"],
                        roles=data["roles"],
                        password_mode=data["first_sign_in"],
                        first_name=data.get("first_name", ""),
                        last_name=data.get("last_name", ""),
                        email=data.get("email", ""),
                        profile=data.get("profile"),
                    )
                    user = account.user
                    if account.password:
                        answer["password"] = account.password
                    if account.invitation_token:
                        answer["invitation_url"] = request.build_absolute_uri(
                            reverse("projects:accept_invitation", args=[account.invitation_token])
                        )
                else:
                    ref = data.get("user") or ""
                    User = get_user_model()
                    lookup = {"pk": int(ref)} if ref.isdigit() else {"username": ref}
                    user = User.objects.filter(**lookup).first()
                    if user is None:
                        raise ValidationError({"user": [gettext("No such person.")]})
                    member_services.add_member(project, user, data["roles"], by=request.user)
                    if data.get("profile"):
                        member_services.update_member(
                            project, user, by=request.user, profile=data["profile"]
                        )
        except DjangoValidationError as exc:
            _raise_django_validation(exc)
        member = next(m for m in member_services.members(project) if m.user.pk == user.pk)
        response = Response(
            {**MemberSerializer(member).data, **answer}, status=status.HTTP_201_CREATED
        )
        response["Cache-Control"] = "no-store"
        return response


class MemberDetailView(APIView):
    """GET one member with their open tasks; PATCH {"roles": [...], "profile": {...}}."""

    def _body(self, project, user):
        member = next(m for m in member_services.members(project) if m.user.pk == user.pk)
        tasks = member_services.open_tasks(project, user)
        return {
            **MemberSerializer(member).data,
            "open_reads": [
                {"id": t.pk, "case": t.case.code, "phase": t.phase, "state": t.state}
                for t in tasks["reads"]
            ],
            "open_arbitrations": [
                {"id": t.pk, "case": t.case.code, "role": t.role, "state": t.state}
                for t in tasks["arbitrations"]
            ],
        }

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str, user_id: int):
        project = _managed(request, slug)
        return Response(self._body(project, member_services.member_or_404(project, user_id)))

    @extend_schema(request=MemberUpdateSerializer, responses=OpenApiTypes.OBJECT)
    def patch(self, request, slug: str, user_id: int):
        project = _managed(request, slug)
        user = member_services.member_or_404(project, user_id)
        body = MemberUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            member_services.update_member(
                project,
                user,
                by=request.user,
                roles=body.validated_data.get("roles"),
                profile=body.validated_data.get("profile"),
            )
        except DjangoValidationError as exc:
            _raise_django_validation(exc)
        if not project.memberships.filter(user=user).exists():
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(self._body(project, user))


class MemberDeactivateView(APIView):
    """POST {"reason"}: the member loses every role in the project; the answer lists
    their open tasks, which wait for reassignment."""

    @extend_schema(request=DeactivateSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, user_id: int):
        project = _managed(request, slug)
        user = member_services.member_or_404(project, user_id)
        body = DeactivateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tasks = member_services.deactivate_member(
            project, user, by=request.user, reason=body.validated_data.get("reason", "")
        )
        return Response(
            {
                "user": user.pk,
                "open_reads": [{"id": t.pk, "case": t.case.code} for t in tasks["reads"]],
                "open_arbitrations": [
                    {"id": t.pk, "case": t.case.code} for t in tasks["arbitrations"]
                ],
            }
        )


class MemberInvitationView(APIView):
    """POST: a fresh invitation link for a member who has not set a password yet."""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, slug: str, user_id: int):
        project = _managed(request, slug)
        user = member_services.member_or_404(project, user_id)
        token = member_services.new_invitation(project, user, by=request.user)
        response = Response(
            {
                "invitation_url": request.build_absolute_uri(
                    reverse("projects:accept_invitation", args=[token])
                )
            }
        )
        response["Cache-Control"] = "no-store"
        return response
