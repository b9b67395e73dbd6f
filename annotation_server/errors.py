"""One path for domain errors: what a service raises when a request cannot be
done, and the one place that turns it into an API or a page response.

A service raises a `DomainError` subclass with a translatable message. Its class
says the HTTP status and a stable machine-readable `code`; extra fields (for
example the current version after a conflict) travel in `extra`. The DRF
exception handler (`api_exception_handler`, settings.REST_FRAMEWORK) answers
the API with `{"detail": ..., "code": ..., **extra}`; the middleware
(`DomainErrorMiddleware`) answers a page with the same message in the site's
layout. Views never catch domain errors themselves.

This module imports no app: every app may use it.
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.shortcuts import render
from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

# A lost or refused database connection (not a query the database rejected).
DatabaseUnavailable = (OperationalError, InterfaceError)


class DomainError(Exception):
    """A request the domain refuses. Subclasses set `status` and `code`."""

    status: int = 409  # Conflict
    code: str = "not_possible"

    def __init__(self, message: str = "", **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra

    def payload(self) -> dict:
        return {"detail": str(self.message), "code": self.code, **self.extra}


def api_exception_handler(exc, context):
    """DRF's handler, plus domain errors and Django's ValidationError. (DRF is
    imported here: its settings import the authentication classes, which may raise
    domain errors, so this module must import without it.)"""
    from rest_framework.exceptions import ValidationError
    from rest_framework.response import Response
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DomainError):
        return Response(exc.payload(), status=exc.status)
    if isinstance(exc, DatabaseUnavailable):
        # The connection dropped (database restarted, failed over, backend
        # killed): nothing of the request was committed, and a retry opens a new
        # connection. Say so, instead of an HTML 500, so clients keep their data.
        from rest_framework.views import set_rollback

        logger.error("database unavailable during %s", context.get("request"), exc_info=exc)
        set_rollback()
        return Response(
            {
                "detail": _("The database is unavailable; nothing was saved. Try again."),
                "code": "database_unavailable",
            },
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, DjangoValidationError):
        exc = ValidationError({"detail": exc.messages})
    return drf_exception_handler(exc, context)


class DomainErrorMiddleware:
    """Pages: a domain error raised by a view is shown as a page with its message."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exc):
        if not isinstance(exc, DomainError):
            return None
        return render(
            request,
            "domain_error.html",
            {"message": exc.message, "code": exc.code},
            status=exc.status,
        )


def server_error(request):
    """The 500 answer (settings: urls.handler500): JSON with a stable code for API
    and DICOMweb clients, which cannot read the friendly page; that page for the
    rest. Nothing of the failure itself is shown (it is logged)."""
    if request.path.startswith(("/api/", "/dicomweb/")):
        from django.http import JsonResponse
        from django.utils.translation import gettext

        return JsonResponse(
            {
                "detail": gettext("The server failed to answer this request; it has been logged."),
                "code": "server_error",
            },
            status=500,
        )
    from django.views.defaults import server_error as friendly_page

    return friendly_page(request)


def flash_form_errors(request, form) -> None:
    """A page form's errors as messages, each under its field's (translated) label."""
    from django.contrib import messages

    for field, errors in form.errors.items():
        label = form.fields[field].label if field in form.fields else ""
        messages.error(request, f"{label}: {' '.join(errors)}" if label else " ".join(errors))
