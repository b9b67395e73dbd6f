"""STOW-RS: POST multipart/related; type="application/dicom" to a project's
/dicomweb/projects/{slug}/studies (or /dicomweb/studies?project=slug).

Instances go through the same pipeline as every other way in (validation,
de-identification, storage, index). The response is the PS3.18 store response
in application/dicom+json (whatever the Accept header): ReferencedSOPSequence for
stored (and duplicate) instances, FailedSOPSequence for the others, each with
FailureReason 0110H (processing failure) and the reason as text in ErrorComment
(0000,0902). Status 200 when all stored, 202 when some failed, 409 when none could
be stored.

The body is read as a stream, never as `request.body` (which Django caps at
DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB): each part is written to a temporary file
as it arrives, under the ingest limits (REFSET_MAX_FILE_MB per part,
REFSET_IMPORT_MAX_TOTAL_MB per request; at most DATA_UPLOAD_MAX_NUMBER_FILES
parts), and removed after the import. A chunked body (Transfer-Encoding: chunked,
as dicomweb-client sends anything over its chunk size) is read when the WSGI
server passes it through decoded and says so (`wsgi.input_terminated`, as
gunicorn does); a server that cannot (Django's runserver) gets 411 asking for a
Content-Length. Authentication: HTTP Basic or the browser session (with its CSRF
token, as for the rest of the API).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import BaseParser

from annotation_server.imaging.dicomweb import multipart
from annotation_server.imaging.dicomweb.multipart import MultipartError
from annotation_server.imaging.dicomweb.views import DicomWebView, SearchStudies
from annotation_server.imaging.ingest.pipeline import default_limits, ingest
from annotation_server.imaging.ingest.sources import (
    Budget,
    Candidate,
    Item,
    Limits,
    Rejection,
    over_budget,
    too_large,
)
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, has_project_perm

PROCESSING_FAILURE = 0x0110  # Failure Reason: processing failure
DICOM = "application/dicom"


class ChunkedBodyUnreadable(Exception):
    """A chunked body the WSGI server does not decode for the application."""


def body_reader(request) -> Callable[[int], bytes]:
    """`read(n)` over the request body, chunked or not, never the whole of it. With
    a Content-Length (also one that web/chunked.py set after spooling a chunked
    body): the Django request, read as a file. Chunked without one: the WSGI input,
    read to its end where the server says it has one (`wsgi.input_terminated`)."""
    meta = request.META
    stream = request.stream  # DRF's: the Django request itself, None without a length
    if stream is not None:
        return stream.read
    if "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower():
        if meta.get("wsgi.input_terminated"):  # PEP 3333 extension: read to EOF
            return meta["wsgi.input"].read
        raise ChunkedBodyUnreadable
    return lambda size: b""


def receive(
    read: Callable[[int], bytes], content_type: str, limits: Limits, folder: Path
) -> list[Item]:
    """Each part of the body as an Item: a Candidate reading its temporary file in
    `folder`, or a Rejection (wrong type, over a limit). The parts are written as
    they arrive; a part over a limit is read through and dropped."""
    default_type = multipart.parse_media_type(content_type or "")[1].get("type") or DICOM
    max_parts = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    budget = Budget(limits)
    items: list[Item] = []
    name, path, out, size, reason = "", Path(), None, 0, ""
    try:
        for event, value in multipart.read_parts(read, content_type):
            if event == "part":
                name = f"part {len(items) + 1}"
                if len(items) >= max_parts:
                    items.append(Rejection(name, too_many_parts(max_parts)))
                    break
                kind = value.get("content-type", default_type).split(";")[0].strip().lower()
                size, reason = 0, ""
                if kind != DICOM:
                    reason = _("unsupported part type %(type)s") % {"type": kind}
                else:
                    path = folder / f"{len(items) + 1:06d}.dcm"
                    out = open(path, "wb")  # noqa: SIM115 (closed at the part's end)
            elif event == "data":
                size += len(value)
                if out is None:
                    continue  # refused: read through
                if not too_large(size, limits) and budget.used + size <= budget.limit:
                    out.write(value)
                    continue
                out.close()
                path.unlink()
                out = None
            else:  # the part's end: named with its whole size
                if out is not None:
                    out.close()
                    out = None
                reason = reason or too_large(size, limits)
                if not reason and not budget.take(size):
                    reason = over_budget(budget)
                    path.unlink(missing_ok=True)
                if reason:
                    items.append(Rejection(name, reason))
                else:
                    items.append(Candidate(name, size, path.read_bytes))
    finally:
        if out is not None:
            out.close()
    return items


def too_many_parts(count: int) -> str:
    return _("more than %(count)s parts (DATA_UPLOAD_MAX_NUMBER_FILES): the rest not read") % {
        "count": count
    }


def _element(tag: str, vr: str, value) -> dict:
    return {tag: {"vr": vr, "Value": [value]}}


class StreamedBody(BaseParser):
    """Claims multipart/related for DRF without reading it: the view reads the
    stream itself. (Session authentication's CSRF check looks at `request.POST`,
    which parses the body; with no parser for the type DRF answered 415.)"""

    media_type = "multipart/related"

    def parse(self, stream, media_type=None, parser_context=None):
        return {}


def _element(tag: str, vr: str, value) -> dict:
    return {tag: {"vr": vr, "Value": [value]}}


class StowView(DicomWebView):
    """Authentication and content negotiation as for the rest of DICOMweb (Basic or
    session, JSON whatever the Accept header: the store response is dicom+json)."""

    parser_classes = [StreamedBody]

    def post(self, request, slug: str | None = None):
        slug = slug or request.query_params.get("project")
        if not slug:
            return JsonResponse(
                {"detail": "Name the project: /dicomweb/projects/{slug}/studies"}, status=400
            )
        project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
        if not has_project_perm(request.user, project, MANAGE):
            raise PermissionDenied("Only the project's dataset managers can store instances.")
        try:
            read = body_reader(request)
        except ChunkedBodyUnreadable:
            detail = _(
                "This server cannot read a chunked request body: send a Content-Length, "
                "or run RefSet under gunicorn."
            )
            return JsonResponse({"detail": detail}, status=411)
        limits = default_limits()
        with tempfile.TemporaryDirectory(
            prefix="refset-stow-", dir=settings.FILE_UPLOAD_TEMP_DIR
        ) as folder:
            try:
                items = receive(read, request.META.get("CONTENT_TYPE", ""), limits, Path(folder))
            except MultipartError as exc:
                return JsonResponse({"detail": str(exc)}, status=415)
            # In the web process: never forked (a request's files are few anyway).
            report = ingest(project, items, user=request.user, source="stow", workers=1)
        stored, failed = [], []
        for result in report.files:
            if result.status in ("imported", "duplicate"):
                stored.append(
                    {
                        **_element("00081155", "UI", result.sop_uid or result.name),
                        **_element("00081150", "UI", result.sop_class_uid or ""),
                    }
                )
            else:
                failed.append(
                    {
                        **_element("00081155", "UI", result.sop_uid or result.name),
                        **_element("00081197", "US", PROCESSING_FAILURE),
                        **_element("00000902", "LO", result.reason[:64]),
                    }
                )
        body = {}
        if stored:
            body["00081199"] = {"vr": "SQ", "Value": stored}
        if failed:
            body["00081198"] = {"vr": "SQ", "Value": failed}
        status = 200 if not failed else (202 if stored else 409)
        return JsonResponse(body, status=status, content_type="application/dicom+json")


_stow = StowView.as_view()


@csrf_exempt
def studies_endpoint(request, slug: str | None = None):
    """/dicomweb/[projects/{slug}/]studies: POST stores (STOW-RS), GET searches (QIDO-RS)."""
    if request.method == "POST":
        return _stow(request, slug=slug)
    kwargs = {"slug": slug} if slug else {}
    return SearchStudies.as_view()(request, **kwargs)
