"""QIDO-RS and WADO-RS over the de-identified data, through `visible_to(user)`.

Authentication: HTTP Basic or the browser session (anonymous -> 401 with a Basic
challenge). Everything a user can see here is what `visible_to` lets them see: a
reader sees only the series of cases they hold a reading task for. With the
prefix /dicomweb/projects/{slug}/ the same views are limited to one project.

WADO-RS instance retrieval returns the stored file as is, unless the Accept header
asks for Explicit VR Little Endian (1.2.840.10008.1.2.1), which is transcoded;
frames are uncompressed little-endian stored values (no rescale), one part each.
"""

from __future__ import annotations

import io
import json
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.db.models import Count, Min, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from pydicom.uid import ExplicitVRLittleEndian
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from annotation_server.accounts.lockout import LockoutAwareBasicAuthentication
from annotation_server.imaging import pixels
from annotation_server.imaging.delivery import (
    cacheable,
    etag_for,
    load_dataset,
    not_modified,
    pixel_error_response,
)
from annotation_server.imaging.dicomweb import attributes as A
from annotation_server.imaging.dicomweb import multipart
from annotation_server.imaging.models import Instance, Series, Study
from annotation_server.projects.models import Project

DICOM_JSON = "application/dicom+json"
PIXEL_TAGS = ("7FE00008", "7FE00009", "7FE00010")

# -- OpenAPI ----------------------------------------------------------------------
# DICOMweb is described by its standard (PS3.18); the schema names each route, its
# query parameters and the media type of its body so that clients and the API fuzz
# reach it. Bodies are DICOM JSON (an array of datasets keyed by tag), multipart/
# related DICOM or frames, or PNG: binary as far as OpenAPI is concerned.

DICOM_JSON_ARRAY = {
    "type": "array",
    "items": {
        "type": "object",
        "description": "A DICOM JSON dataset (PS3.18 F.2): attributes keyed by tag.",
        "additionalProperties": {"type": "object"},
    },
}
QIDO_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="at most this many results"),
    OpenApiParameter("offset", OpenApiTypes.INT, description="skip this many results"),
    OpenApiParameter("StudyInstanceUID", OpenApiTypes.STR),
    OpenApiParameter("SeriesInstanceUID", OpenApiTypes.STR),
    OpenApiParameter("SOPInstanceUID", OpenApiTypes.STR),
    OpenApiParameter("PatientID", OpenApiTypes.STR, description="the pseudonym; * and ? match"),
    OpenApiParameter("Modality", OpenApiTypes.STR),
]
QIDO_SCHEMA = extend_schema(
    parameters=QIDO_PARAMETERS,
    responses={(200, DICOM_JSON): OpenApiResponse(DICOM_JSON_ARRAY, description="matches")},
)
MULTIPART_RELATED = "multipart/related"


class DicomWebSchema(AutoSchema):
    """A search (QIDO-RS) and a retrieval (WADO-RS) share a path prefix
    (.../studies and .../studies/{study}); searches are named `..._search`."""

    def get_operation_id(self) -> str:
        operation_id = super().get_operation_id()
        suffix = getattr(self.view, "operation_suffix", None)
        if suffix:
            operation_id = operation_id.removesuffix("_retrieve") + f"_{suffix}"
        return operation_id


class DicomWebView(APIView):
    authentication_classes = [LockoutAwareBasicAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]
    schema = DicomWebSchema()

    def perform_content_negotiation(self, request, force=False):
        # Bodies are built here (dicom+json, multipart, png); errors are JSON.
        return JSONRenderer(), "application/json"

    # -- visibility ---------------------------------------------------------------

    def _project(self) -> int | None:
        # `slug` as the project prefix routes (and the STOW dispatcher) name it.
        slug = self.kwargs.get("slug") or self.kwargs.get("project")
        if slug is None:
            return None
        project = Project.objects.visible_to(self.request.user).filter(slug=slug).first()
        if project is None:
            raise Http404("No such project.")
        return project.pk

    def series_qs(self) -> QuerySet[Series]:
        qs = Series.objects.visible_to(self.request.user)
        project = self._project()
        return qs if project is None else qs.filter(study__project_id=project)

    def instance_qs(self) -> QuerySet[Instance]:
        qs = Instance.objects.visible_to(self.request.user)
        project = self._project()
        qs = qs if project is None else qs.filter(series__study__project_id=project)
        for kwarg, field in (
            ("study", "series__study__study_uid"),
            ("series", "series__series_uid"),
            ("instance", "sop_instance_uid"),
        ):
            if kwarg in self.kwargs:
                qs = qs.filter(**{field: self.kwargs[kwarg]})
        return qs

    def root(self) -> str:
        """Absolute URL of this DICOMweb root (with the project prefix if any)."""
        path = self.request.path
        for marker in ("/studies", "/series", "/instances"):
            if marker in path:
                path = path[: path.index(marker)]
                break
        return self.request.build_absolute_uri(path)

    def files(self) -> list[dict[str, Any]]:
        """One row per stored instance (not per frame) in the addressed resource."""
        rows = self.instance_qs().order_by("series_id", "slice_index", "frame")
        seen, out = set(), []
        for row in rows.values(
            "series_id",
            "sop_instance_uid",
            "file",
            "sha256",
            "transfer_syntax_uid",
            "series__series_uid",
            "series__study__study_uid",
        ):
            key = (row["series_id"], row["sop_instance_uid"])
            if key not in seen:
                seen.add(key)
                out.append(row)
        if not out:
            raise Http404("Nothing found (or nothing you may see).")
        return out


def dicom_json(data: Any, status: int = 200) -> HttpResponse:
    body = json.dumps(data, separators=(",", ":"))
    return HttpResponse(body, status=status, content_type=DICOM_JSON)


def _bad_request(detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=400)


# -- QIDO-RS ----------------------------------------------------------------------


class SearchStudies(DicomWebView):
    operation_suffix = "search"

    @QIDO_SCHEMA
    def get(self, request: HttpRequest, **kwargs) -> HttpResponse:
        try:
            offset, limit = A.paging(request.GET)
            terms = A.query_terms(request.GET)
        except A.QueryError as exc:
            return _bad_request(str(exc))
        series = self.series_qs()
        studies = Study.objects.filter(id__in=series.values("study_id")).filter(
            A.filter_by(terms, {"StudyInstanceUID": "study_uid", "PatientID": "patient_pseudo_id"})
        )
        modalities = terms.get("ModalitiesInStudy", []) + terms.get("Modality", [])
        if modalities:
            wanted = series.filter(A.filter_by({"Modality": modalities}, {"Modality": "modality"}))
            studies = studies.filter(id__in=wanted.values("study_id"))
        studies = studies.order_by("id")
        page = studies[offset : offset + limit] if limit is not None else studies[offset:]
        rows = list(
            page.values(
                "id", "study_uid", "patient_pseudo_id", "study_date", "description", "patient_sex"
            )
        )
        ids = [r["id"] for r in rows]
        mods: dict[int, list[str]] = defaultdict(list)
        for s in series.filter(study_id__in=ids).values("study_id", "modality"):
            mods[s["study_id"]].append(s["modality"])
        counts = {
            c["series__study_id"]: c["n"]
            for c in Instance.objects.filter(series__in=series.filter(study_id__in=ids))
            .values("series__study_id")
            .annotate(n=Count("sop_instance_uid", distinct=True))
            .order_by()
        }
        root = self.root()
        return dicom_json(
            [
                A.study_json(
                    r,
                    mods[r["id"]],
                    len(mods[r["id"]]),
                    counts.get(r["id"], 0),
                    f"{root}/studies/{r['study_uid']}",
                )
                for r in rows
            ]
        )


class SearchSeries(DicomWebView):
    FIELDS = {
        "StudyInstanceUID": "study__study_uid",
        "SeriesInstanceUID": "series_uid",
        "Modality": "modality",
        "PatientID": "study__patient_pseudo_id",
    }
    operation_suffix = "search"

    @QIDO_SCHEMA
    def get(self, request: HttpRequest, **kwargs) -> HttpResponse:
        try:
            offset, limit = A.paging(request.GET)
            terms = A.query_terms(request.GET)
        except A.QueryError as exc:
            return _bad_request(str(exc))
        qs = self.series_qs().filter(A.filter_by(terms, self.FIELDS))
        if "study" in kwargs:
            qs = qs.filter(study__study_uid=kwargs["study"])
        qs = qs.order_by("study_id", "id")
        page = qs[offset : offset + limit] if limit is not None else qs[offset:]
        rows = list(
            page.values(
                "id", "series_uid", "modality", "description", "body_part", "study__study_uid"
            )
        )
        counts = {
            c["series_id"]: c["n"]
            for c in Instance.objects.filter(series_id__in=[r["id"] for r in rows])
            .values("series_id")
            .annotate(n=Count("sop_instance_uid", distinct=True))
            .order_by()
        }
        root = self.root()
        return dicom_json(
            [
                A.series_json(
                    r,
                    counts.get(r["id"], 0),
                    f"{root}/studies/{r['study__study_uid']}/series/{r['series_uid']}",
                )
                for r in rows
            ]
        )


class SearchInstances(DicomWebView):
    FIELDS = {
        "StudyInstanceUID": "series__study__study_uid",
        "SeriesInstanceUID": "series__series_uid",
        "SOPInstanceUID": "sop_instance_uid",
        "SOPClassUID": "sop_class_uid",
        "Modality": "series__modality",
        "PatientID": "series__study__patient_pseudo_id",
    }
    operation_suffix = "search"

    @QIDO_SCHEMA
    def get(self, request: HttpRequest, **kwargs) -> HttpResponse:
        try:
            offset, limit = A.paging(request.GET)
            terms = A.query_terms(request.GET)
        except A.QueryError as exc:
            return _bad_request(str(exc))
        qs = self.instance_qs().filter(A.filter_by(terms, self.FIELDS))
        grouped = (
            qs.values(
                "series_id",
                "sop_instance_uid",
                "sop_class_uid",
                "instance_number",
                "rows",
                "columns",
                "series__series_uid",
                "series__study__study_uid",
                "series__modality",
            )
            .annotate(frames=Count("id"), first=Min("slice_index"))
            .order_by("series_id", "first", "sop_instance_uid")
        )
        rows = grouped[offset : offset + limit] if limit is not None else grouped[offset:]
        root = self.root()
        return dicom_json(
            [
                A.instance_json(
                    r,
                    f"{root}/studies/{r['series__study__study_uid']}/series/"
                    f"{r['series__series_uid']}/instances/{r['sop_instance_uid']}",
                )
                for r in rows
            ]
        )


# -- WADO-RS ----------------------------------------------------------------------


class NotAcceptable(Exception):
    pass


def wanted_transfer_syntax(accept: str) -> str | None:
    """The transfer syntax asked for: None = as stored, or Explicit VR Little Endian."""
    if not accept.strip():
        return None
    for alternative in accept.split(","):
        media_type, params = multipart.parse_media_type(alternative)
        if media_type in ("*/*", "multipart/*"):
            return None
        if media_type == "multipart/related" and params.get("type", "application/dicom") in (
            "application/dicom",
            "application/*",
            "*/*",
        ):
            ts = params.get("transfer-syntax")
            if ts in (None, "", "*"):
                return None
            if ts == ExplicitVRLittleEndian:
                return ts
    raise NotAcceptable(accept)


def transcode(data: bytes, ts: str | None) -> tuple[bytes, str]:
    """Bytes in the wanted transfer syntax (as stored when None); returns (bytes, uid)."""
    ds = pixels.read_dataset(data)
    stored = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if ts is None or stored == ts:
        return data, stored
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        try:
            ds.decompress(generate_instance_uid=False)
        except Exception as exc:  # noqa: BLE001
            raise pixels.PixelError(
                f"Cannot decompress ({pixels.transfer_syntax(ds)}): {exc}",
                code="undecodable",
                transfer_syntax=pixels.transfer_syntax(ds),
            ) from exc
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True, enforce_file_format=True)
    return buffer.getvalue(), str(ExplicitVRLittleEndian)


class Retrieve(DicomWebView):
    """Study, series or instance as multipart/related; type="application/dicom"."""

    @extend_schema(responses={(200, MULTIPART_RELATED): OpenApiTypes.BINARY})
    def get(self, request: HttpRequest, **kwargs) -> HttpResponse:
        try:
            ts = wanted_transfer_syntax(request.headers.get("Accept", ""))
        except NotAcceptable:
            return JsonResponse(
                {
                    "detail": "Offered: application/dicom as stored, or transfer-syntax="
                    f"{ExplicitVRLittleEndian}."
                },
                status=406,
            )
        rows = self.files()
        boundary = multipart.new_boundary()
        content_type = multipart.content_type("application/dicom", boundary, ts)
        if "instance" in kwargs:
            row = rows[0]
            etag = etag_for("wado-instance", row["sha256"], ts)
            cached = not_modified(request, etag)
            if cached:
                return cached
            try:
                data, uid = transcode(self._read(row), ts)
            except pixels.PixelError as error:
                return pixel_error_response(error)
            body = b"".join(multipart.iter_body([(_part_type(uid), data)], boundary))
            return cacheable(HttpResponse(body, content_type=content_type), etag)
        return StreamingHttpResponse(
            multipart.iter_body(self._parts(rows, ts), boundary), content_type=content_type
        )

    def _read(self, row: dict[str, Any]) -> bytes:
        from annotation_server.imaging import storage

        with storage.open_instance(row["file"]) as handle:
            return handle.read()

    def _parts(self, rows: list[dict[str, Any]], ts: str | None) -> Iterator[tuple[str, bytes]]:
        for row in rows:
            data = self._read(row)
            try:
                data, uid = transcode(data, ts)
            except pixels.PixelError:
                uid = row["transfer_syntax_uid"]  # cannot transcode: sent as stored, labelled
            yield _part_type(uid), data


def _part_type(uid: str) -> str:
    return f"application/dicom; transfer-syntax={uid}" if uid else "application/dicom"


class Metadata(DicomWebView):
    """DICOM JSON of every instance addressed (no pixel data)."""

    @extend_schema(responses={(200, DICOM_JSON): OpenApiResponse(DICOM_JSON_ARRAY)})
    def get(self, request: HttpRequest, **kwargs) -> HttpResponse:
        out = []
        for row in self.files():
            ds = load_dataset(row["file"])
            data = ds.to_json_dict(bulk_data_threshold=1 << 20, suppress_invalid_tags=True)
            for tag in PIXEL_TAGS:
                data.pop(tag, None)
            out.append(data)
        return dicom_json(out)


# At most this many frames per WADO-RS frames request: a client asks in batches.
MAX_FRAMES_PER_REQUEST = 512


def _frame_numbers(text: str) -> list[int]:
    """The 1-based frame list of a WADO-RS frames URL, bounded before anything is
    read: at most MAX_FRAMES_PER_REQUEST numbers, each >= 1, none repeated (the
    range check against the instance comes once its frame count is known)."""
    parts = text.split(",")
    if len(parts) > MAX_FRAMES_PER_REQUEST:
        raise ValueError(
            f"Ask for at most {MAX_FRAMES_PER_REQUEST} frames per request, in batches."
        )
    try:
        numbers = [int(part) for part in parts if part.strip()]
    except ValueError:
        raise ValueError("Frame numbers are a comma-separated list of integers >= 1.") from None
    if not numbers or min(numbers) < 1:
        raise ValueError("Frame numbers are a comma-separated list of integers >= 1.")
    if len(set(numbers)) != len(numbers):
        raise ValueError("Each frame number may appear only once.")
    return numbers


class Frames(DicomWebView):
    """Frames (1-based) as multipart/related; type="application/octet-stream"."""

    @extend_schema(responses={(200, MULTIPART_RELATED): OpenApiTypes.BINARY})
    def get(self, request: HttpRequest, **kwargs) -> HttpResponse:
        accept = request.headers.get("Accept", "")
        if accept and not any(
            t in accept for t in ("application/octet-stream", "*/*", "multipart/*")
        ):
            return JsonResponse(
                {"detail": "Frames are offered as application/octet-stream only."}, status=406
            )
        try:
            numbers = _frame_numbers(kwargs["frames"])
        except ValueError as error:
            return _bad_request(str(error))
        row = self.files()[0]
        etag = etag_for("wado-frames", row["sha256"], *numbers)
        cached = not_modified(request, etag)
        if cached:
            return cached
        try:
            ds = load_dataset(row["file"])
            n = pixels.number_of_frames(ds)
            if max(numbers) > n:
                return JsonResponse({"detail": f"The instance has {n} frame(s)."}, status=404)
            stored = pixels.stored_frames(ds, [f - 1 for f in numbers])
        except pixels.PixelError as error:
            return pixel_error_response(error)
        part = f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}"

        def parts():  # one frame's bytes at a time: the body is streamed, never joined
            for f in numbers:
                arr = stored[f - 1]
                yield part, arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()

        boundary = multipart.new_boundary()
        content_type = multipart.content_type(
            "application/octet-stream", boundary, str(ExplicitVRLittleEndian)
        )
        response = StreamingHttpResponse(
            multipart.iter_body(parts(), boundary), content_type=content_type
        )
        return cacheable(response, etag)


class Rendered(DicomWebView):
    """image/png of an instance's first frame (or the frame named): ?window=c,w&viewport=w,h."""

    @extend_schema(
        parameters=[
            OpenApiParameter("window", OpenApiTypes.STR, description="centre,width"),
            OpenApiParameter("viewport", OpenApiTypes.STR, description="width,height"),
        ],
        responses={(200, "image/png"): OpenApiTypes.BINARY},
    )
    def get(self, request: HttpRequest, **kwargs) -> HttpResponse:
        try:
            frame_no = _frame_numbers(kwargs.get("frames", "1"))[0]
            window = request.GET.get("window")
            center = width = None
            if window:
                center, width = (float(v) for v in window.split(",")[:2])
                if width <= 0:
                    raise ValueError(window)
            viewport = request.GET.get("viewport")
            size = max(int(v) for v in viewport.split(",")[:2]) if viewport else None
            if size is not None and not 1 <= size <= 4096:
                raise ValueError(viewport)
        except ValueError:
            return _bad_request("window=centre,width (width > 0); viewport=w,h (1..4096).")
        row = self.files()[0]
        etag = etag_for("wado-rendered", row["sha256"], frame_no, center, width, size)
        cached = not_modified(request, etag)
        if cached:
            return cached
        try:
            ds = load_dataset(row["file"])
            if frame_no > pixels.number_of_frames(ds):
                return JsonResponse({"detail": "No such frame."}, status=404)
            frame = pixels.decode_frame(ds, frame_no - 1)
        except pixels.PixelError as error:
            return pixel_error_response(error)
        png = pixels.render_png(ds, frame, center=center, width=width, size=size)
        return cacheable(HttpResponse(png, content_type="image/png"), etag)
