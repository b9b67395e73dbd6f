"""Requests no URL of RefSet can mean, refused with 400 before any view runs.

NUL (0x00) in the path or a query parameter: PostgreSQL text cannot hold it, so
such a value reached a query (a slug, a UID, a filter) and answered 500. The API
fuzz found it on most routes; refusing it here, once, covers every view, also
the ones added later. Bodies are not checked here: DRF's CharField already
refuses NUL with a field error.

Imports no app: settings.MIDDLEWARE names it.
"""

from __future__ import annotations

from django.http import HttpResponseBadRequest, JsonResponse
from django.utils.translation import gettext

API_PREFIXES = ("/api/", "/dicomweb/")


def has_nul(request) -> bool:
    if "\x00" in request.path:
        return True
    return any(
        "\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()
    )


class RejectNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if has_nul(request):
            message = gettext("A URL cannot contain the NUL character (%00).")
            if request.path.startswith(API_PREFIXES):
                return JsonResponse({"detail": message, "code": "nul_in_url"}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
