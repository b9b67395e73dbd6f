"""The series panel's endpoints (session or basic auth, like the rest of /api/v1/).

    GET /api/v1/cases/{case_id}/series/              the image series of the case's study
    GET /api/v1/series/{id}/thumbnail.png?size=&v=   the middle slice, default window, PNG

Who may ask: anyone who may see the case (`Case.objects.visible_to`: its
readers, its arbitrators once it reaches them, the project's managers); a case
they may not see answers 404, as everywhere in the API. They get the case's
series and the other image series of the same study (`Series.objects.visible_to`,
imaging/querysets.py), read-only; nothing of another study, no non-image
series, nothing about anyone's reads.

Thumbnails: a strong ETag (the middle slice's content hash, frame and size);
`v` is the version token the listing gives: with the current one the response
may be cached for good (`immutable`), without it the browser revalidates. A
series without images answers 404, pixels that cannot be read or decoded 422,
each with a JSON `detail` and `code`, never a 500.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.imaging import pixels
from annotation_server.imaging import study_series as panel
from annotation_server.imaging.api.views import PNGRenderer
from annotation_server.imaging.delivery import (
    CACHE_CONTROL,
    not_modified,
    pixel_error_response,
)
from annotation_server.imaging.models import Series
from annotation_server.projects.models import Case


class PanelSeriesSerializer(serializers.Serializer):
    """One series of the panel (what `study_series.study_series` gives)."""

    id = serializers.IntegerField()
    series_uid = serializers.CharField()
    modality = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    body_part = serializers.CharField(allow_blank=True)
    view_position = serializers.CharField(allow_blank=True, help_text="PA, AP... (header)")
    laterality = serializers.CharField(allow_blank=True, help_text="L, R or blank (header)")
    images = serializers.IntegerField(help_text="frames that may be shown")
    rows = serializers.IntegerField(allow_null=True)
    columns = serializers.IntegerField(allow_null=True)
    slice_thickness_mm = serializers.FloatField(allow_null=True)
    slice_spacing_mm = serializers.FloatField(allow_null=True)
    current = serializers.BooleanField(help_text="the series of this case (the one being read)")
    thumbnail = serializers.CharField(allow_null=True, help_text="URL; null: no image to show")


class PanelStudySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    description = serializers.CharField(allow_blank=True)


class CaseSeriesSerializer(serializers.Serializer):
    case = serializers.IntegerField()
    study = PanelStudySerializer()
    current = serializers.IntegerField(help_text="id of the case's own series")
    series = PanelSeriesSerializer(many=True)


class CaseSeriesView(APIView):
    """The image series of a case's study, the case's own first (`current`)."""

    @extend_schema(responses=CaseSeriesSerializer)
    def get(self, request, case_id: int):
        case = get_object_or_404(
            Case.objects.visible_to(request.user).select_related("series__study"), pk=case_id
        )
        rows = panel.study_series(Series.objects.visible_to(request.user), case)
        for row in rows:
            url = reverse("series-thumbnail", args=[row["id"]])
            version = row.pop("thumbnail_version")
            row["thumbnail"] = f"{url}?v={version}" if version else None
        study = case.series.study
        return Response(
            {
                "case": case.pk,
                "study": {"id": study.pk, "description": study.description},
                "current": case.series_id,
                "series": rows,
            }
        )


def _error(detail: str, code: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


class SeriesThumbnailView(APIView):
    """The middle slice of a series you may see, windowed, as a small PNG."""

    renderer_classes = [JSONRenderer, PNGRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("size", int, description="fit in size x size (32..512, default 128)"),
            OpenApiParameter("v", str, description="version token from the series listing"),
        ],
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    def get(self, request, pk: int):
        series = get_object_or_404(
            Series.objects.visible_to(request.user).select_related("study"), pk=pk
        )
        try:
            size = int(request.GET.get("size") or panel.THUMBNAIL_SIZE)
        except ValueError:
            size = 0
        if size not in panel.THUMBNAIL_SIZES:
            return _error(_("size must be a whole number from 32 to 512."), "bad_size", 400)
        middle = panel.middle_instance(series)
        if middle is None:
            return _error(_("The series has no images to show."), "empty", 404)
        etag = panel.thumbnail_etag(middle, size)
        forever = request.GET.get("v") == panel.thumbnail_version(middle)
        cached = not_modified(request, etag)
        if cached:
            return self._headers(cached, etag, forever)
        try:
            thumb = panel.thumbnail(middle, size)
        except pixels.PixelError as error:
            return pixel_error_response(error)
        response = HttpResponse(thumb.png, content_type="image/png")
        response["X-Refset-Thumbnail"] = "stored" if thumb.stored else "built"
        return self._headers(response, etag, forever)

    @staticmethod
    def _headers(response: HttpResponse, etag: str, forever: bool) -> HttpResponse:
        response["ETag"] = etag
        response["Cache-Control"] = CACHE_CONTROL if forever else "private, no-cache"
        response["Vary"] = "Cookie, Authorization"
        return response
