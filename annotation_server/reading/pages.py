"""Helpers for the viewer pages that embed API data as their start-up state (the
reading workstation here, the arbitration view in adjudication): the serializer
context and the label-schema language. The series with its slices is
imaging.delivery.series_with_slices."""

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


def schema_language() -> str:
    """The label-schema language key for the current UI language."""
    return "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"
