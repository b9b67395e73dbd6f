"""Helpers for pages that embed API data as their start-up state (workstation,
arbitration view): the serializer context, the series with its slices, and the
label-schema language."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.translation import get_language
from rest_framework.request import Request


def serializer_context(request: HttpRequest) -> dict:
    """Context for DRF serializers rendering a page's start-up data.

    A bare `Request(request)` has no authenticators: asked for its user it answers
    AnonymousUser and writes that back onto the Django request, so every later
    `visible_to(request.user)` in the view would see nobody. Carry the page's
    already-authenticated user instead.
    """
    api_request = Request(request)
    api_request.user = request.user
    return {"request": api_request}


def series_with_slices(series_id: int):
    """The series for a viewer page: its detail (SeriesDetailSerializer) with the
    per-slice rows the viewer needs, in slice order, in two queries."""
    from django.db.models import Prefetch

    from annotation_server.imaging.models import Instance, Series

    slices = Instance.objects.order_by("slice_index", "frame").only(
        "id", "series_id", "slice_index", "position", "position_along_normal", "frame"
    )
    return (
        Series.objects.filter(pk=series_id)
        .prefetch_related(Prefetch("instances", queryset=slices))
        .get()
    )


def schema_language() -> str:
    """The label-schema language key for the current UI language."""
    return "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"
