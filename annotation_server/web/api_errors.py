"""Turn domain errors into clear API responses."""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from annotation_server.projects.schema import SchemaError


def exception_handler(exc, context):
    from annotation_server.projects.services import TransitionError
    from annotation_server.reading.services import ReadLockedError, VersionConflict

    if isinstance(exc, SchemaError):
        return Response(
            {"detail": "The data does not fit the label schema.", "errors": exc.errors},
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, VersionConflict):
        return Response(
            {
                "detail": str(exc),
                "code": "version_conflict",
                "current_version": exc.current_version,
            },
            status=status.HTTP_409_CONFLICT,
        )
    if isinstance(exc, ReadLockedError):
        return Response(
            {"detail": str(exc), "code": "read_locked"}, status=status.HTTP_409_CONFLICT
        )
    if isinstance(exc, TransitionError):
        return Response(
            {"detail": str(exc), "code": "invalid_transition"}, status=status.HTTP_409_CONFLICT
        )
    return drf_exception_handler(exc, context)
