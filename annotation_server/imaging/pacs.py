"""Pulling studies from a hospital PACS over DICOMweb (QIDO-RS search, WADO-RS retrieve);
a saved connection whose transport is DIMSE is pulled by imaging.dimse.scu instead.

    client = PacsClient("https://pacs.example/dicom-web", auth=("basic", "user", "pw"))
    client.search_studies(PatientID="ZY123")          # simplified rows
    report = pull(project, client, [study_uid], user=request.user)

Retrieved instances are spooled, one part at a time as they arrive, into a
private scratch folder (mode 0700, removed after each study and on any error),
then go through the ingest pipeline (``source="pacs"``), which de-identifies
them before anything is stored in RefSet's storage, as uploads do. A pull is held
to the import limits: an instance larger than REFSET_MAX_FILE_MB is read through
and dropped (never held in memory), and instances past REFSET_IMPORT_MAX_TOTAL_MB
over the whole pull are refused; each such instance is a rejection in the report
naming the setting. Memory stays at one instance plus a chunk. Names in the
import report are ``study-K/instance-NNNNN.dcm`` (K: the study's position in
the request), so the PACS's UIDs do not travel into reports.

The WADO-RS answer (multipart/related) is parsed here with a small streaming
parser that accepts the quoted parameter forms servers use, including Orthanc's
``type="application/dicom; transfer-syntax=..."``. HTTP goes through
``http.client`` (no proxies from the environment, no transparent gzip).
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import logging
import shutil
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from annotation_server.imaging.ingest.pipeline import ImportReport

logger = logging.getLogger(__name__)

Auth = tuple[str, ...] | None

STUDY_FIELDS = {
    "StudyInstanceUID": "0020000D",
    "PatientID": "00100020",
    "StudyDate": "00080020",
    "ModalitiesInStudy": "00080061",
    "StudyDescription": "00081030",
    "NumberOfStudyRelatedInstances": "00201208",
}
SERIES_FIELDS = {
    "SeriesInstanceUID": "0020000E",
    "Modality": "00080060",
    "SeriesNumber": "00200011",
    "SeriesDescription": "0008103E",
    "NumberOfSeriesRelatedInstances": "00201209",
}
MULTI_VALUED = {"ModalitiesInStudy"}
ACCEPT_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
ACCEPT_DICOM_FALLBACK = 'multipart/related; type="application/dicom"'
CHUNK = 256 * 1024


def destination_refusal(url: str, allowed: Iterable[str]) -> str | None:
    """Why the server may not connect to `url`, or None when an entry of the
    operator's allowlist (settings.REFSET_PACS_ALLOWED_HOSTS) covers it.

    A saved connection carries a password or token that the server sends to that
    address, and a manager is not an operator: without this a manager could
    point it at loopback or an internal service (SSRF)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not a DICOMweb URL (http or https expected): {url!r}"
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return f"not a valid port in {url!r}"
    return address_refusal(parts.hostname, port, allowed)


def address_refusal(host: str, port: int | None, allowed: Iterable[str]) -> str | None:
    """Why the server may not connect to `host`:`port` (a DICOMweb server's, or a
    DIMSE peer's), or None when an entry of REFSET_PACS_ALLOWED_HOSTS covers it."""
    if not host or not port:
        return "no PACS host and port"
    host = host.strip().lower()
    for entry in allowed:
        entry = entry.strip().lower()
        if not entry:
            continue
        if "/" in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                continue
            addresses = _addresses(host)
            if addresses and all(a in network for a in addresses):
                return None
            continue
        entry_host, entry_port = entry, None
        if entry.startswith("["):
            entry_host, _, rest = entry[1:].partition("]")
            entry_port = rest.removeprefix(":") or None
        elif entry.count(":") == 1:
            entry_host, entry_port = entry.split(":")
        if entry_host == host and (entry_port is None or entry_port == str(port)):
            return None
    return (
        f"{host}:{port} is not an allowed PACS destination; the operator lists the "
        "allowed ones in REFSET_PACS_ALLOWED_HOSTS"
    )


def _addresses(host: str) -> list:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return []
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


class PacsError(Exception):
    """The PACS could not be reached or refused a request; the message names the URL."""


class PacsNotFound(PacsError):
    """The PACS has no such study (HTTP 404)."""


# multipart ---------------------------------------------------------------------


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; k=v; k="quoted; value"`` -> (type/subtype, {k: v}), keys lower-case.

    Quoted values may hold ``;`` and ``=`` (Orthanc puts the transfer syntax inside
    the quoted ``type``); backslash escapes inside quotes are honoured.
    """
    params: dict[str, str] = {}
    i, n = 0, len(value)

    def token(stop: str) -> str:
        nonlocal i
        start = i
        while i < n and value[i] not in stop:
            i += 1
        return value[start:i].strip()

    media = token(";").lower()
    while i < n:
        i += 1  # the ';'
        key = token("=;").lower()
        if i >= n or value[i] == ";":
            if key:
                params[key] = ""
            continue
        i += 1  # the '='
        while i < n and value[i] in " \t":
            i += 1
        if i < n and value[i] == '"':
            i += 1
            out = []
            while i < n and value[i] != '"':
                if value[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(value[i])
                i += 1
            i += 1  # the closing quote
            token(";")  # anything after it up to the next ';'
            params[key] = "".join(out)
        else:
            params[key] = token(";")
    return media, params


@dataclass(frozen=True)
class Oversize:
    """Stands for the body of a part larger than the caller's `max_part`: its
    bytes were read off the wire and dropped, never held."""

    size: int


def iter_multipart(
    chunks: Iterable[bytes], boundary: str, max_part: int | None = None
) -> Iterator[tuple[dict[str, str], bytes | Oversize]]:
    """Parts of a multipart body, read from ``chunks`` as they arrive: (headers, body).

    Keeps at most one part plus one chunk in memory; with ``max_part``, a part
    larger than that many bytes is read through and dropped, and yielded as
    ``Oversize(size)`` (so memory stays under max_part plus a chunk). Raises
    PacsError on a body that ends before its closing delimiter.
    """
    delim = b"--" + boundary.encode("latin-1")
    buf = bytearray()
    it = iter(chunks)
    done = False

    def more() -> bool:
        nonlocal done
        if done:
            return False
        for chunk in it:
            if chunk:
                buf.extend(chunk)
                return True
        done = True
        return False

    # Preamble up to the first delimiter (which may start the body without CRLF).
    while True:
        at = buf.find(delim)
        if at >= 0 and (at == 0 or buf[at - 2 : at] == b"\r\n"):
            del buf[: at + len(delim)]
            break
        if not more():
            raise PacsError("multipart body without its opening boundary")
    sep = b"\r\n" + delim
    while True:
        while len(buf) < 2 and more():
            pass
        if buf[:2] == b"--":
            return  # closing delimiter
        # rest of the delimiter line (transport padding), then headers
        while (eol := buf.find(b"\r\n")) < 0:
            if not more():
                raise PacsError("multipart body ends inside a boundary line")
        del buf[: eol + 2]
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if buf.startswith(b"\r\n"):  # a part without headers
                end = -2
                break
            if not more():
                raise PacsError("multipart body ends inside a part's headers")
        headers: dict[str, str] = {}
        for line in bytes(buf[: max(end, 0)]).decode("latin-1").split("\r\n"):
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        del buf[: end + 4]
        length = headers.get("content-length", "")
        if length.isdigit() and (max_part is None or int(length) <= max_part):
            # fast path: read exactly, then expect the delimiter
            size = int(length)
            while len(buf) < size + len(sep) and more():
                pass
            if buf[size : size + len(sep)] == sep:
                body = bytes(buf[:size])
                del buf[: size + len(sep)]
                yield headers, body
                continue
        scanned = 0
        dropped = 0  # bytes of an oversize part already let go
        while (at := buf.find(sep, scanned)) < 0:
            if max_part is not None and dropped + len(buf) > max_part + len(sep):
                # too large to keep: drop all but what may begin the delimiter
                cut = len(buf) - len(sep)
                dropped += cut
                del buf[:cut]
                scanned = 0
            else:
                scanned = max(0, len(buf) - len(sep))
            if not more():
                raise PacsError("multipart body ends inside a part (no closing boundary)")
        size = dropped + at
        if max_part is not None and size > max_part:
            del buf[: at + len(sep)]
            yield headers, Oversize(size)
            continue
        body = bytes(buf[:at])
        del buf[: at + len(sep)]
        yield headers, body


# the client ----------------------------------------------------------------------


def _value(element: dict | None) -> Any:
    if not element:
        return None
    values = element.get("Value") or []
    out = []
    for v in values:
        if isinstance(v, dict) and "Alphabetic" in v:
            v = v["Alphabetic"]
        out.append(v)
    return out


def _simplify(row: dict, fields: dict[str, str]) -> dict:
    simple: dict[str, Any] = {}
    for name, tag in fields.items():
        values = _value(row.get(tag))
        if name in MULTI_VALUED:
            simple[name] = [str(v) for v in values or []]
        elif not values:
            simple[name] = None if name.startswith("Number") else ""
        elif name.startswith(("Number", "SeriesNumber")):
            try:
                simple[name] = int(values[0])
            except (TypeError, ValueError):
                simple[name] = None
        else:
            simple[name] = str(values[0])
    return simple


class PacsClient:
    """A DICOMweb client for one server (``base_url`` ends at the DICOMweb root).

    ``auth``: None, ("basic", user, password) or ("bearer", token).
    """

    def __init__(self, base_url: str, auth: Auth = None, *, timeout: float = 60.0):
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PacsError(f"not a DICOMweb URL (http or https expected): {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.path = parts.path
        self.timeout = timeout
        self.headers = {"User-Agent": "RefSet-PACS/1"}
        if auth:
            kind = auth[0]
            if kind == "basic" and len(auth) == 3:
                raw = f"{auth[1]}:{auth[2]}".encode()
                self.headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            elif kind == "bearer" and len(auth) == 2:
                self.headers["Authorization"] = f"Bearer {auth[1]}"
            else:
                raise ValueError("auth must be None, ('basic', user, pw) or ('bearer', token)")

    @classmethod
    def from_connection(cls, connection, *, timeout: float = 60.0) -> PacsClient:
        """A client for a stored PacsConnection (the secret decrypted here, never
        logged), only while its address is on the operator's allowlist."""
        from django.conf import settings

        from annotation_server.imaging.ingest.keys import _fernet

        refusal = destination_refusal(connection.base_url, settings.REFSET_PACS_ALLOWED_HOSTS)
        if refusal:
            raise PacsError(refusal)

        secret = ""
        if connection.secret_encrypted:
            secret = _fernet().decrypt(connection.secret_encrypted.encode()).decode()
        auth: Auth = None
        if connection.auth == "basic":
            auth = ("basic", connection.username, secret)
        elif connection.auth == "bearer":
            auth = ("bearer", secret)
        return cls(connection.base_url, auth, timeout=timeout)

    def __repr__(self) -> str:
        return f"PacsClient({self.base_url!r})"

    # HTTP ---------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def _get(
        self, path: str, accept: str, query: dict | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        target = self.path + path + (f"?{urlencode(query, doseq=True)}" if query else "")
        url = f"{self.base_url}{path}"
        conn = self._connect()
        try:
            conn.request("GET", target, headers={**self.headers, "Accept": accept})
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            if isinstance(exc, socket.timeout):
                reason = f"no answer within {self.timeout:.0f} s"
            raise PacsError(f"cannot reach the PACS at {self.base_url}: {reason}") from exc
        if resp.status == 404:
            resp.read()
            conn.close()
            raise PacsNotFound(f"the PACS at {self.base_url} has no {url} (HTTP 404)")
        if resp.status >= 300:
            # The body goes to the log, never into a message a page shows.
            detail = resp.read(300).decode("utf-8", "replace").strip()
            conn.close()
            logger.warning(
                "PACS %s answered %s for GET %s: %r", self.base_url, resp.status, url, detail
            )
            hint = " (check the user name and password)" if resp.status in (401, 403) else ""
            raise PacsError(
                f"the PACS at {self.base_url} answered HTTP {resp.status} for GET {url}{hint}"
            )
        return conn, resp

    def _json(self, path: str, query: dict | None = None) -> list[dict]:
        conn, resp = self._get(path, "application/dicom+json", query)
        try:
            body = resp.read()
        finally:
            conn.close()
        if resp.status == 204 or not body.strip():
            return []
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise PacsError(f"the PACS at {self.base_url} sent invalid JSON for {path}") from exc
        if not isinstance(data, list):
            raise PacsError(f"the PACS at {self.base_url} sent no list of results for {path}")
        return data

    # QIDO-RS --------------------------------------------------------------------

    def search_studies(self, **filters: Any) -> list[dict]:
        """QIDO-RS /studies with attribute filters (PatientID=..., StudyDate="20240101-",
        limit=..., offset=...); rows with StudyInstanceUID, PatientID, StudyDate,
        ModalitiesInStudy, StudyDescription, NumberOfStudyRelatedInstances."""
        query: dict[str, Any] = {k: v for k, v in filters.items() if v not in (None, "")}
        query["includefield"] = list(STUDY_FIELDS)
        return [_simplify(row, STUDY_FIELDS) for row in self._json("/studies", query)]

    def search_series(self, study_uid: str) -> list[dict]:
        """QIDO-RS /studies/{uid}/series: SeriesInstanceUID, Modality, SeriesNumber,
        SeriesDescription, NumberOfSeriesRelatedInstances."""
        path = f"/studies/{quote(study_uid, safe='')}/series"
        query = {"includefield": list(SERIES_FIELDS)}
        return [_simplify(row, SERIES_FIELDS) for row in self._json(path, query)]

    # WADO-RS --------------------------------------------------------------------

    def retrieve_study(
        self, study_uid: str, max_part: int | None = None
    ) -> Iterator[tuple[str, bytes | Oversize]]:
        """WADO-RS /studies/{uid}: every instance as (name, Part-10 bytes), streamed;
        an instance over ``max_part`` bytes comes as ``Oversize`` (not kept)."""
        path = f"/studies/{quote(study_uid, safe='')}"
        try:
            conn, resp = self._get(path, ACCEPT_DICOM)
        except PacsError as exc:
            if isinstance(exc, PacsNotFound) or "HTTP 406" not in str(exc):
                raise
            conn, resp = self._get(path, ACCEPT_DICOM_FALLBACK)
        try:
            media, params = parse_content_type(resp.getheader("Content-Type", ""))
            boundary = params.get("boundary")
            if media != "multipart/related" or not boundary:
                raise PacsError(
                    f"the PACS at {self.base_url} answered {media or 'no content type'} "
                    f"without a multipart boundary for GET {self.base_url}{path}"
                )

            def chunks() -> Iterator[bytes]:
                try:
                    while chunk := resp.read(CHUNK):
                        yield chunk
                except (OSError, http.client.HTTPException) as exc:
                    raise PacsError(
                        f"the connection to the PACS at {self.base_url} broke while "
                        f"retrieving a study: {exc}"
                    ) from exc

            parts = iter_multipart(chunks(), boundary, max_part)
            for n, (headers, body) in enumerate(parts, 1):
                part_type, _ = parse_content_type(headers.get("content-type", "application/dicom"))
                if part_type not in ("application/dicom", ""):
                    logger.warning("skipping a %s part from %s", part_type, self.base_url)
                    continue
                yield f"instance-{n:05d}.dcm", body
        finally:
            conn.close()


# pull into a project ---------------------------------------------------------------


def pull(
    project,
    connection_or_client,
    study_uids: Iterable[str],
    *,
    user=None,
    site=None,
    progress: Callable[[int, int], None] | None = None,
    prebuild_streams: bool = True,
    run_qc: bool = True,
    workers: int | None = None,
) -> ImportReport:
    """Retrieve each study and import it (de-identified) into ``project``.

    ``connection_or_client``: a PacsConnection (its site is the default site) or a
    PacsClient. Returns one ImportReport over all studies; a study the PACS does
    not have is a rejected entry. Raises PacsError when the PACS cannot be reached.
    """
    from annotation_server.imaging.ingest import pipeline
    from annotation_server.imaging.ingest.sources import Budget, Limits
    from annotation_server.imaging.models import Series

    if isinstance(connection_or_client, PacsClient):
        client = connection_or_client
    elif getattr(connection_or_client, "transport", "") == "dimse":
        from annotation_server.imaging.dimse import scu

        return scu.pull(
            project, connection_or_client, study_uids, user=user, site=site,
            progress=progress, prebuild_streams=prebuild_streams, run_qc=run_qc,
            workers=workers,
        )  # fmt: skip
    else:
        client = PacsClient.from_connection(connection_or_client)
        site = site or connection_or_client.site
    total = pipeline.ImportReport()
    done_before = 0
    limits = Limits.from_settings()
    budget = Budget(limits)  # REFSET_IMPORT_MAX_TOTAL_MB over the whole pull
    scratch = Path(tempfile.mkdtemp(prefix="refset-pull-"))
    try:
        for k, study_uid in enumerate(study_uids, 1):
            try:
                items = _spool_study(client, study_uid, k, scratch, limits, budget)
            except PacsNotFound:
                total.files.append(
                    pipeline.FileResult(
                        f"study-{k}", "rejected", _("the PACS has no study with this UID")
                    )
                )
                continue
            if not items:
                total.files.append(
                    pipeline.FileResult(f"study-{k}", "rejected", _("the PACS sent no instances"))
                )
                continue

            def step(done: int, count: int, offset: int = done_before) -> None:
                if progress:
                    progress(offset + done, offset + count)

            report = pipeline.ingest(
                project,
                items,
                site=site,
                user=user,
                source="pacs",
                progress=step,
                prebuild_streams=prebuild_streams,
                run_qc=run_qc,
                workers=workers,
            )
            total.workers = max(total.workers, report.workers)
            done_before += len(items)
            total.files.extend(report.files)
            total.studies += report.studies
            total.series += report.series
            total.cases.extend(report.cases)
            for path in scratch.iterdir():
                path.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    series_uids = {f.series_uid for f in total.files if f.series_uid}
    total.patients = (
        Series.objects.filter(study__project=project, series_uid__in=series_uids)
        .values("study__patient_pseudo_id")
        .distinct()
        .count()
    )
    return total


def _spool_study(client: PacsClient, study_uid: str, k: int, scratch: Path, limits, budget):
    """Retrieve one study part by part onto scratch files, held to the import
    limits: an instance over REFSET_MAX_FILE_MB, or past the pull's
    REFSET_IMPORT_MAX_TOTAL_MB, becomes a rejection naming the setting, and
    nothing of it is kept in memory."""
    from annotation_server.imaging.ingest.sources import (
        Candidate,
        Rejection,
        over_budget,
        too_large,
    )

    items: list = []
    for n, (name, body) in enumerate(client.retrieve_study(study_uid, limits.max_file_bytes)):
        display = f"study-{k}/{name}"
        if isinstance(body, Oversize):
            items.append(Rejection(display, too_large(body.size, limits)))
            continue
        if not budget.take(len(body)):
            items.append(Rejection(display, over_budget(budget)))
            continue
        path = scratch / f"{k:05d}-{n:06d}.dcm"
        path.write_bytes(body)
        items.append(Candidate(display, len(body), path.read_bytes))
    return items
