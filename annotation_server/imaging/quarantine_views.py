"""The quarantine review in the browser and over REST (services in ingest/quarantine.py).

Pages: the project's quarantine list and one image's review page (canvas, boxes,
preview, apply; release with a reason; reject). REST, used by the page:
GET /api/v1/projects/{slug}/quarantine/[{id}/], POST .../{id}/preview/ (PNG),
.../redact/, .../release/, .../reject/.

Only the project's dataset managers see any of it; everyone else gets 404 (a
quarantined image's existence is not shown to readers or other projects).
"""

from __future__ import annotations

import re

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.imaging.api.views import PNGRenderer
from annotation_server.imaging.ingest import quarantine
from annotation_server.imaging.models import Quarantine
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, has_project_perm

STATUS_FILTERS = ("pending", "all")

_REGIONS = {
    "top": gettext_lazy("top"),
    "bottom": gettext_lazy("bottom"),
    "left": gettext_lazy("left"),
    "right": gettext_lazy("right"),
}
# Reasons are stored in English (ingest workers have no language); shown translated.
_REASONS = [
    (
        re.compile(r"^burned-in text found by OCR \((?P<where>[a-z, ]+)\)$"),
        gettext_lazy("burned-in text found by OCR (%(where)s)"),
    ),
    (
        re.compile(r"^text-like strokes in the pixels \((?P<where>[a-z, ]+)\); OCR not available$"),
        gettext_lazy("text-like strokes in the pixels (%(where)s); OCR not available"),
    ),
    (
        re.compile(r"^BurnedInAnnotation is YES$"),
        gettext_lazy(
            "the header says the pixels carry burned-in annotation (BurnedInAnnotation YES)"
        ),
    ),
    (
        re.compile(r"^RecognizableVisualFeatures is YES$"),
        gettext_lazy(
            "the header says the image shows recognisable features (RecognizableVisualFeatures YES)"
        ),
    ),
    (
        re.compile(r"^(SOP class|modality|ImageType|secondary image|description) "),
        gettext_lazy("image type that often carries burned-in text: %(detail)s"),
    ),
]


def reason_display(reason: str) -> str:
    """The stored (English) reason in the user's language where it is one we write."""
    for pattern, template in _REASONS:
        match = pattern.match(reason)
        if match:
            where = match.groupdict().get("where")
            places = ", ".join(
                str(_REGIONS.get(w.strip(), w.strip())) for w in (where or "").split(",")
            )
            return str(template) % {"where": places, "detail": reason}
    return reason


def reviewed_project_or_404(user, slug: str) -> Project:
    """The project when `user` manages it; 404 for everyone else (readers included)."""
    project = get_object_or_404(Project.objects.visible_to(user), slug=slug)
    if not has_project_perm(user, project, MANAGE):
        raise Http404
    return project


def item_or_404(user, slug: str, item_id: int) -> Quarantine:
    project = reviewed_project_or_404(user, slug)
    return get_object_or_404(
        quarantine.reviewable(user).select_related("project", "reviewed_by"),
        pk=item_id,
        project=project,
    )


def as_dict(item: Quarantine) -> dict:
    slug = item.project.slug
    return {
        "id": item.pk,
        "status": item.status,
        "status_display": item.get_status_display(),
        "reason": item.reason,
        "reason_display": reason_display(item.reason),
        "modality": item.modality,
        "sop_instance_uid": item.sop_instance_uid,
        "series_uid": item.series_uid,
        "text_boxes": item.text_boxes,
        "redacted_boxes": item.redacted_boxes,
        "redacted_sop_instance_uid": item.redacted_sop_instance_uid,
        "reviewed_by": item.reviewed_by.get_username() if item.reviewed_by else None,
        "reviewed_at": item.reviewed_at.isoformat() if item.reviewed_at else None,
        "review_note": item.review_note,
        "created_at": item.created_at.isoformat(),
        "page": reverse("quarantine-review", args=[slug, item.pk]),
        "image": reverse("quarantine-image", args=[slug, item.pk]),
    }


# -- pages --------------------------------------------------------------------------


@login_required
def quarantine_list(request, slug: str):
    project = reviewed_project_or_404(request.user, slug)
    show = request.GET.get("status", "pending")
    show = show if show in STATUS_FILTERS else "pending"
    items = Quarantine.objects.filter(project=project).select_related("reviewed_by")
    pending = items.filter(status=Quarantine.Status.PENDING).count()
    if show == "pending":
        items = items.filter(status=Quarantine.Status.PENDING)
    rows = list(items[:500])
    for row in rows:
        row.reason_display = reason_display(row.reason)
    return render(
        request,
        "imaging/quarantine_list.html",
        {"project": project, "items": rows, "show": show, "pending": pending},
    )


@login_required
@never_cache
def quarantine_review(request, slug: str, item_id: int):
    item = item_or_404(request.user, slug, item_id)
    ds = None
    boxes: list[dict] = []
    rows = columns = None
    error = ""
    if item.status != Quarantine.Status.REJECTED:
        try:
            ds = quarantine.load(item)
            rows, columns = int(ds.Rows), int(ds.Columns)
            if item.status == Quarantine.Status.PENDING:
                boxes = quarantine.suggested_boxes(item, ds)
        except FileNotFoundError:
            error = _("The stored file is gone (the image was rejected).")
    quarantine.viewed(item, request.user)
    api = reverse("api-quarantine-detail", args=[slug, item.pk])
    return render(
        request,
        "imaging/quarantine_review.html",
        {
            "project": item.project,
            "item": item,
            "reason": reason_display(item.reason),
            "rows": rows,
            "columns": columns,
            "error": error,
            "ocr_text": " ".join(b.get("text", "") for b in boxes if b.get("text")),
            "config": {
                "image": reverse("quarantine-image", args=[slug, item.pk]) if ds else "",
                "preview": api + "preview/",
                "redact": api + "redact/",
                "release": api + "release/",
                "reject": api + "reject/",
                "list": reverse("quarantine", args=[slug]),
                "rows": rows,
                "columns": columns,
                "suggested": boxes,
                "pending": item.status == Quarantine.Status.PENDING,
            },
        },
    )


@login_required
@never_cache
def quarantine_image(request, slug: str, item_id: int):
    """The quarantined pixels, as PNG, for the reviewer only (never cached)."""
    item = item_or_404(request.user, slug, item_id)
    try:
        ds = quarantine.load(item)
    except FileNotFoundError:
        raise Http404 from None
    response = HttpResponse(quarantine.render(ds), content_type="image/png")
    response["Cache-Control"] = "no-store, private"
    return response


# -- REST ---------------------------------------------------------------------------


class QuarantineItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    reason = serializers.CharField()
    sop_instance_uid = serializers.CharField()
    text_boxes = serializers.ListField(child=serializers.DictField(), required=False)
    page = serializers.CharField()


ITEM = QuarantineItemSerializer


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(allow_blank=True, required=False, default="")


class RedactSerializer(NoteSerializer):
    boxes = serializers.ListField(child=serializers.DictField(), allow_empty=True)


class QuarantineListView(APIView):
    """The project's quarantined images (pending first), for its dataset managers."""

    @extend_schema(
        responses={200: QuarantineItemSerializer(many=True)},
        operation_id="api_v1_projects_quarantine_list",
    )
    def get(self, request, slug: str):
        project = reviewed_project_or_404(request.user, slug)
        items = Quarantine.objects.filter(project=project).select_related("project", "reviewed_by")
        if request.query_params.get("status") in Quarantine.Status.values:
            items = items.filter(status=request.query_params["status"])
        return Response([as_dict(i) for i in items[:500]])


class QuarantineDetailView(APIView):
    @extend_schema(responses={200: ITEM})
    def get(self, request, slug: str, item_id: int):
        return Response(as_dict(item_or_404(request.user, slug, item_id)))


class QuarantinePreviewView(APIView):
    """PNG of the image with the boxes blacked out, exactly as `redact` would write it."""

    # the PNG itself is an HttpResponse; errors are JSON (the page asks for both)
    renderer_classes = [JSONRenderer, PNGRenderer]

    @extend_schema(request=RedactSerializer, responses={(200, "image/png"): bytes})
    def post(self, request, slug: str, item_id: int):
        item = item_or_404(request.user, slug, item_id)
        body = RedactSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        png = quarantine.preview(item, request.user, body.validated_data["boxes"])
        response = HttpResponse(png, content_type="image/png")
        response["Cache-Control"] = "no-store, private"
        return response


class QuarantineRedactView(APIView):
    """Write the redacted copy as a new instance and admit it (QC runs on it)."""

    @extend_schema(request=RedactSerializer, responses={200: ITEM})
    def post(self, request, slug: str, item_id: int):
        item = item_or_404(request.user, slug, item_id)
        body = RedactSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = quarantine.redact(
            item, request.user, body.validated_data["boxes"], body.validated_data["note"]
        )
        item.refresh_from_db()
        return Response({**as_dict(item), "instance_id": instance.pk if instance else None})


class QuarantineReleaseView(APIView):
    """Admit the image as it is; `note` (why no redaction is needed) is required."""

    @extend_schema(request=NoteSerializer, responses={200: ITEM})
    def post(self, request, slug: str, item_id: int):
        item = item_or_404(request.user, slug, item_id)
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        instance = quarantine.release(item, request.user, body.validated_data["note"])
        item.refresh_from_db()
        return Response({**as_dict(item), "instance_id": instance.pk if instance else None})


class QuarantineRejectView(APIView):
    """Refuse the image: its stored file is deleted; `note` is required."""

    @extend_schema(request=NoteSerializer, responses={200: ITEM})
    def post(self, request, slug: str, item_id: int):
        item = item_or_404(request.user, slug, item_id)
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        quarantine.reject(item, request.user, body.validated_data["note"])
        item.refresh_from_db()
        return Response(as_dict(item))
