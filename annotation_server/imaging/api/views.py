"""Studies, series and instances (read-only, through `visible_to`), and pixel delivery.

    GET /api/v1/instances/{id}/pixels/        one frame record (format: imaging.pixels)
    GET /api/v1/series/{id}/pixels/           every frame of the series in slice order,
                                              streamed, each a length-prefixed record (a
                                              large first frame preceded by its preview)
    GET /api/v1/instances/{id}/rendered.png/?wc=&ww=&size=   windowed 8-bit PNG

Pixel responses carry a strong ETag derived from the content hash, the frame, the
slice placement and the parameters, and may be cached forever by the browser.
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch
from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, JSONRenderer

from annotation_server.imaging import pixels, stream_cache
from annotation_server.imaging.api.serializers import (
    InstanceSerializer,
    SeriesDetailSerializer,
    SeriesSerializer,
    StudySerializer,
)
from annotation_server.imaging.delivery import (
    ROW_FIELDS,
    cacheable,
    etag_for,
    load_dataset,
    not_modified,
    pixel_error_response,
    placement,
    series_etag,
    series_records,
    series_rows_and_etag,
)
from annotation_server.imaging.models import Instance, Series, Study
from annotation_server.projects.permissions import MANAGE, project_ids

MAX_PNG_SIZE = 4096


def _row(instance: Instance) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in ROW_FIELDS}


def _float_param(request: HttpRequest, name: str) -> float | None:
    value = request.GET.get(name)
    if value in (None, ""):
        return None
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(name)
    return number


class PixelsRenderer(BaseRenderer):
    media_type = pixels.MEDIA_TYPE
    format = "pixels"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else json.dumps(data).encode()


class PNGRenderer(PixelsRenderer):
    media_type = "image/png"
    format = "png"


# -- viewsets ---------------------------------------------------------------------


def pixel_object(view, queryset, project_of):
    """The object the URL names, for a pixel endpoint.

    A manager of its project may see it (the first clause of every `visible_to`
    rule): one permission look-up decides, where `visible_to` evaluates all four
    role look-ups before it can filter (most of a warm request's time). Everyone
    else gets `get_object()` and the full rule, so nothing else changes.
    """
    user = view.request.user
    if user.is_authenticated and user.is_active and not user.is_superuser:
        try:
            pk = int(view.kwargs["pk"])
        except (KeyError, TypeError, ValueError):
            return view.get_object()
        obj = queryset.filter(pk=pk).first()
        if obj is not None and project_of(obj) in project_ids(user, MANAGE):
            view.check_object_permissions(view.request, obj)
            return obj
    return view.get_object()


class StudyViewSet(viewsets.ReadOnlyModelViewSet):
    """Studies with at least one series visible to you."""

    serializer_class = StudySerializer
    filterset_fields = ["project", "study_uid", "patient_pseudo_id"]

    def get_queryset(self):
        return Study.objects.visible_to(self.request.user).select_related("project").order_by("id")


class SeriesViewSet(viewsets.ReadOnlyModelViewSet):
    """Series visible to you, with geometry; the detail lists slices in slice order."""

    serializer_class = SeriesSerializer
    filterset_fields = ["study", "modality", "series_uid"]

    def get_queryset(self):
        qs = Series.objects.visible_to(self.request.user).select_related("study").order_by("id")
        if self.action == "retrieve":
            slices = Instance.objects.order_by("slice_index", "frame").only(
                "id", "series_id", "slice_index", "position", "position_along_normal", "frame"
            )
            qs = qs.prefetch_related(Prefetch("instances", queryset=slices))
        return qs

    def get_serializer_class(self):
        return SeriesDetailSerializer if self.action == "retrieve" else SeriesSerializer

    @extend_schema(responses={(200, pixels.MEDIA_TYPE): OpenApiTypes.BINARY})
    @action(detail=True, url_path="pixels", renderer_classes=[JSONRenderer, PixelsRenderer])
    def pixels(self, request, pk=None):
        """Every frame, decoded and rescaled, as concatenated records in slice order."""
        series = pixel_object(
            self, Series.objects.select_related("study"), lambda s: s.study.project_id
        )
        etag, count = series_etag(series)
        cached = not_modified(request, etag)
        if cached:
            return cached
        key = stream_cache.key_for(etag)
        stored = stream_cache.open_stored(key)
        if stored is not None:  # built before: the file itself (sendfile where the server can)
            response = FileResponse(stored, content_type=pixels.MEDIA_TYPE)
            response["X-Refset-Stream"] = "stored"
        else:
            rows, etag_now = series_rows_and_etag(series)
            if etag_now != etag:  # changed in between: serve (and store) what is there now
                etag, key = etag_now, stream_cache.key_for(etag_now)
            count = len(rows)
            body = stream_cache.tee_to_storage(series_records(rows, previews=True), key)
            response = StreamingHttpResponse(body, content_type=pixels.MEDIA_TYPE)
            response["X-Refset-Stream"] = "built"
        response["X-Refset-Frames"] = str(count)
        return cacheable(response, etag)


class InstanceViewSet(viewsets.ReadOnlyModelViewSet):
    """Instances (one row per frame) visible to you, and their pixels."""

    serializer_class = InstanceSerializer
    filterset_fields = ["series", "sop_instance_uid", "frame"]

    def get_queryset(self):
        return Instance.objects.visible_to(self.request.user).order_by("id")

    @extend_schema(responses={(200, pixels.MEDIA_TYPE): OpenApiTypes.BINARY})
    @action(detail=True, url_path="pixels", renderer_classes=[JSONRenderer, PixelsRenderer])
    def pixels(self, request, pk=None):
        """One frame record: JSON header then the rescaled pixels (see imaging.pixels)."""
        instance = pixel_object(
            self,
            Instance.objects.select_related("series__study"),
            lambda i: i.series.study.project_id,
        )
        row = _row(instance)
        etag = etag_for(
            "instance",
            instance.sha256,
            instance.frame,
            instance.slice_index,
            instance.position_along_normal,
            instance.pk,
        )
        cached = not_modified(request, etag)
        if cached:
            return cached
        try:
            frame = pixels.decode_frame(load_dataset(instance.file), instance.frame)
        except pixels.PixelError as error:
            return pixel_error_response(error)
        body = frame.record({**placement(row), "index": 0, "count": 1})
        return cacheable(HttpResponse(body, content_type=pixels.MEDIA_TYPE), etag)

    @extend_schema(
        parameters=[
            OpenApiParameter("wc", float, description="window centre (default: file preset)"),
            OpenApiParameter("ww", float, description="window width"),
            OpenApiParameter("size", int, description="thumbnail: fit in size x size"),
        ],
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    @action(detail=True, url_path="rendered.png", renderer_classes=[JSONRenderer, PNGRenderer])
    def rendered(self, request, pk=None):
        """The frame windowed to 8 bits as PNG (MONOCHROME1 inverted; colour as is)."""
        instance = self.get_object()
        try:
            center, width = _float_param(request, "wc"), _float_param(request, "ww")
            size = int(request.GET["size"]) if request.GET.get("size") else None
            if size is not None and not 1 <= size <= MAX_PNG_SIZE:
                raise ValueError("size")
            if width is not None and width <= 0:
                raise ValueError("ww")
        except ValueError:
            return JsonResponse(
                {"detail": f"wc and ww must be numbers (ww > 0), size 1..{MAX_PNG_SIZE}."},
                status=400,
            )
        etag = etag_for("png", instance.sha256, instance.frame, center, width, size)
        cached = not_modified(request, etag)
        if cached:
            return cached
        try:
            ds = load_dataset(instance.file)
            frame = pixels.decode_frame(ds, instance.frame)
        except pixels.PixelError as error:
            return pixel_error_response(error)
        png = pixels.render_png(ds, frame, center=center, width=width, size=size)
        return cacheable(HttpResponse(png, content_type="image/png"), etag)
