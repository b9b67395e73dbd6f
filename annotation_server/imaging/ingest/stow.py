"""STOW-RS: POST multipart/related; type="application/dicom" to a project's
/dicomweb/projects/{slug}/studies (or /dicomweb/studies?project=slug).

Instances go through the same pipeline as every other way in (validation,
de-identification, storage, index). The response is the PS3.18 store response
in application/dicom+json: ReferencedSOPSequence for stored (and duplicate)
instances, FailedSOPSequence for the others, each with FailureReason 0110H (processing
failure) and the reason as text in ErrorComment (0000,0902). Status 200 when all
stored, 202 when some failed, 409 when none could be stored.
"""

from __future__ import annotations

import re

from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.csrf import csrf_exempt
from rest_framework.exceptions import PermissionDenied
from rest_framework.views import APIView

from annotation_server.imaging.ingest.pipeline import default_limits, ingest
from annotation_server.imaging.ingest.sources import Candidate, Rejection
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import MANAGE, has_project_perm

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
PROCESSING_FAILURE = 0x0110  # Failure Reason: processing failure


class MultipartError(ValueError):
    pass


def split_multipart(body: bytes, content_type: str) -> list[tuple[dict, bytes]]:
    """(headers, payload) of each part of a multipart/related body."""
    match = _BOUNDARY.search(content_type or "")
    if not content_type.lower().startswith("multipart/related") or not match:
        raise MultipartError("Content-Type must be multipart/related with a boundary")
    delimiter = b"--" + match.group(1).encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise MultipartError("a part has no header/body separator")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        parts.append((headers, payload[:-2] if payload.endswith(b"\r\n") else payload))
    if not parts:
        raise MultipartError("no parts in the multipart body")
    return parts


def _element(tag: str, vr: str, value) -> dict:
    return {tag: {"vr": vr, "Value": [value]}}


class StowView(APIView):
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
            parts = split_multipart(request.body, request.META.get("CONTENT_TYPE", ""))
        except MultipartError as exc:
            return JsonResponse({"detail": str(exc)}, status=415)
        limits = default_limits()
        items = []
        for i, (headers, payload) in enumerate(parts, 1):
            kind = headers.get("content-type", "application/dicom").split(";")[0].strip()
            name = f"part {i}"
            if kind != "application/dicom":
                items.append(Rejection(name, f"unsupported part type {kind}"))
            elif len(payload) > limits.max_file_bytes:
                items.append(Rejection(name, "part exceeds the file size limit"))
            else:
                items.append(Candidate(name, len(payload), lambda p=payload: p))
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
    from annotation_server.imaging.dicomweb.views import SearchStudies

    kwargs = {"slug": slug} if slug else {}
    return SearchStudies.as_view()(request, **kwargs)
