"""Query/retrieve against a PACS over DIMSE (pynetdicom as SCU), Study Root.

    client = DimseClient("ORTHANC", "10.0.0.5", 4242)      # calling AE: RefSet's own
    client.find_studies(PatientID="ZY123")                  # rows as PacsClient gives
    client.find_series(study_uid)
    report = pull(project, connection, [study_uid])         # C-MOVE or C-GET
    client.store([dataset])                                 # C-STORE (write-back)
    client.store_confirmed(dataset)                         # C-FIND, C-STORE, C-FIND
    client.find_instance(study_uid, series_uid, sop_uid)    # C-FIND, IMAGE level

Retrieval, as the connection says:
- C-MOVE (the usual PACS set-up): the PACS is asked to send the study to RefSet's
  own listener (its AE title, REFSET_DICOM_AE_TITLE), which it must know as a
  modality; the listener accepts it because the PACS's AE title and host are this
  connection's, imports the association into the connection's project and leaves
  an import job. `pull` waits for those jobs (REFSET_DIMSE_MOVE_WAIT_S, default
  300 s) and returns their reports as one, so the pull job lists every file.
- C-GET: the objects come back on the query association itself (RefSet proposes
  the image storage classes with the SCP role); they are checked against the
  import limits, spooled into a private scratch folder (mode 0700, removed after
  each study) and imported through the one ingest pipeline, as a DICOMweb pull is.

Report names are ``study-K/instance-NNNNN.dcm`` (K: the study's position in the
request), so the PACS's UIDs do not travel into reports.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    Comprehensive3DSRStorage,
    SegmentationStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from annotation_server.imaging.dimse.contexts import GET_TRANSFER_SYNTAXES, IMAGE_STORAGE_CLASSES
from annotation_server.imaging.dimse.listener import own_ae_title
from annotation_server.imaging.pacs import SERIES_FIELDS, STUDY_FIELDS, PacsError

PENDING = (0xFF00, 0xFF01)


def move_wait_seconds() -> float:
    """REFSET_DIMSE_MOVE_WAIT_S: how long a C-MOVE pull waits for the listener
    to import what the PACS sent (default 300)."""
    return float(settings.REFSET_DIMSE_MOVE_WAIT_S)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _row(identifier: Dataset, fields: dict[str, str]) -> dict:
    row: dict = {}
    for name in fields:
        value = identifier.get(name)
        if name == "ModalitiesInStudy":
            if value is None or value == "":
                row[name] = []
            elif isinstance(value, str):
                row[name] = [v for v in value.split("\\") if v]
            else:
                row[name] = [str(v) for v in value]
        elif name.startswith("Number") or name == "SeriesNumber":
            try:
                row[name] = int(value) if value not in (None, "") else None
            except (TypeError, ValueError):
                row[name] = None
        else:
            row[name] = _text(value)
    return row


class DimseClient:
    """An SCU for one PACS (its AE title, host, port); `calling_ae` defaults to
    RefSet's listener AE title (the one the PACS knows)."""

    def __init__(
        self,
        ae_title: str,
        host: str,
        port: int,
        *,
        calling_ae: str | None = None,
        timeout: float = 60.0,
    ):
        self.ae_title = ae_title
        self.host = host
        self.port = int(port)
        self.calling_ae = calling_ae or own_ae_title()
        self.timeout = timeout

    @classmethod
    def from_connection(cls, connection, *, timeout: float = 60.0) -> DimseClient:
        """A client for a stored DIMSE PacsConnection, only while its address is on
        the operator's allowlist (REFSET_PACS_ALLOWED_HOSTS, as for DICOMweb)."""
        from annotation_server.imaging.pacs import address_refusal

        refusal = address_refusal(
            connection.host, connection.port, settings.REFSET_PACS_ALLOWED_HOSTS
        )
        if refusal:
            raise PacsError(refusal)
        return cls(connection.ae_title, connection.host, connection.port, timeout=timeout)

    def __repr__(self) -> str:
        return f"DimseClient({self.ae_title}@{self.host}:{self.port})"

    @property
    def where(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    def _ae(self) -> AE:
        ae = AE(ae_title=self.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        return ae

    def _associate(self, ae: AE, **kwargs):
        assoc = ae.associate(self.host, self.port, ae_title=self.ae_title, **kwargs)
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise PacsError(
                f"the PACS at {self.where} refused the association from {self.calling_ae} "
                "(is RefSet's AE title known to it?)"
            )
        raise PacsError(f"cannot reach the PACS at {self.where}")

    # C-ECHO / C-FIND ----------------------------------------------------------------

    def echo(self) -> bool:
        ae = self._ae()
        ae.add_requested_context(Verification)
        assoc = self._associate(ae)
        try:
            status = assoc.send_c_echo()
            return bool(status) and status.Status == 0x0000
        finally:
            assoc.release()

    def _find(self, query: Dataset, assoc=None) -> list[Dataset]:
        """C-FIND (Study Root) on `assoc`, or on an association of its own."""
        own = assoc is None
        if own:
            ae = self._ae()
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
            assoc = self._associate(ae)
        found = []
        try:
            for status, identifier in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            ):
                if not status:
                    raise PacsError(f"the PACS at {self.where} did not answer the C-FIND")
                if status.Status in PENDING and identifier is not None:
                    found.append(identifier)
                elif status.Status not in (0x0000, *PENDING):
                    raise PacsError(
                        f"the PACS at {self.where} refused the C-FIND "
                        f"(status 0x{status.Status:04X})"
                    )
        finally:
            if own:
                assoc.release()
        return found

    def find_studies(self, **filters: str) -> list[dict]:
        """Studies matching `filters` (attribute keyword -> value, DICOM matching:
        wildcards, date ranges), as PacsClient.search_studies gives them."""
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        for name in (*STUDY_FIELDS, "AccessionNumber"):
            setattr(query, name, "")
        for name, value in filters.items():
            setattr(query, name, value)
        return [_row(i, STUDY_FIELDS) for i in self._find(query)]

    def find_series(self, study_uid: str) -> list[dict]:
        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.StudyInstanceUID = study_uid
        for name in SERIES_FIELDS:
            setattr(query, name, "")
        return [_row(i, SERIES_FIELDS) for i in self._find(query)]

    def find_instance(self, study_uid: str, series_uid: str, sop_uid: str, assoc=None) -> bool:
        """Whether the PACS holds the instance (C-FIND at IMAGE level, Study Root:
        the study and series UIDs are the hierarchy's unique keys)."""
        query = Dataset()
        query.QueryRetrieveLevel = "IMAGE"
        query.StudyInstanceUID = study_uid
        query.SeriesInstanceUID = series_uid
        query.SOPInstanceUID = sop_uid
        found = self._find(query, assoc)
        return any(str(i.get("SOPInstanceUID", "")) == sop_uid for i in found)

    # C-STORE ------------------------------------------------------------------------

    # Write-back objects: SEG and Comprehensive 3D SR contexts are always proposed
    # (a PACS accepts only the classes it is offered), with the object's own
    # transfer syntax first, then the uncompressed ones.
    STORE_CLASSES: tuple[str, ...] = (str(SegmentationStorage), str(Comprehensive3DSRStorage))

    def _store_ae(self, datasets: list[Dataset], *, find: bool = False) -> AE:
        syntaxes: dict[str, list[str]] = {uid: [] for uid in self.STORE_CLASSES}
        for ds in datasets:
            own = str(ds.file_meta.TransferSyntaxUID)
            wanted = syntaxes.setdefault(str(ds.SOPClassUID), [])
            for uid in (own, *GET_TRANSFER_SYNTAXES):
                if uid not in wanted:
                    wanted.append(uid)
        ae = self._ae()
        if find:
            ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        for uid, transfer in list(syntaxes.items())[: 128 - int(find)]:
            ae.add_requested_context(uid, transfer or list(GET_TRANSFER_SYNTAXES))
        return ae

    def _send(self, assoc, ds: Dataset) -> int:
        try:
            status = assoc.send_c_store(ds)
        except ValueError as exc:  # no accepted context for its class/syntax
            raise PacsError(
                f"the PACS at {self.where} accepts no context for {ds.SOPClassUID}: {exc}"
            ) from exc
        if not status:
            raise PacsError(f"the PACS at {self.where} did not answer the C-STORE")
        return int(status.Status)

    def store(self, datasets: Iterable[Dataset]) -> list[int]:
        """C-STORE each dataset (Part 10 datasets with file meta) on one
        association; returns their statuses. Raises PacsError when the PACS
        refuses the association or a context, or does not answer."""
        datasets = list(datasets)
        assoc = self._associate(self._store_ae(datasets))
        try:
            return [self._send(assoc, ds) for ds in datasets]
        finally:
            if assoc.is_established:
                assoc.release()

    def store_confirmed(self, ds: Dataset) -> tuple[bool, int | None]:
        """On one association: C-FIND the instance; when the PACS lacks it,
        C-STORE it and C-FIND it again. Returns (found at the end, the C-STORE
        status or None when it was there already)."""
        assoc = self._associate(self._store_ae([ds], find=True))
        keys = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
        try:
            if self.find_instance(*keys, assoc=assoc):
                return True, None
            status = self._send(assoc, ds)
            return self.find_instance(*keys, assoc=assoc), status
        finally:
            if assoc.is_established:
                assoc.release()

    # C-MOVE / C-GET -----------------------------------------------------------------

    @staticmethod
    def _study(study_uid: str) -> Dataset:
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study_uid
        return query

    def move(self, study_uid: str, destination: str | None = None) -> dict:
        """Ask the PACS to send the study to `destination` (RefSet's listener by
        default); returns the final sub-operation counts and status."""
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = self._associate(ae)
        final: dict = {"status": None, "completed": 0, "failed": 0, "warning": 0}
        try:
            for status, _identifier in assoc.send_c_move(
                self._study(study_uid),
                destination or own_ae_title(),
                StudyRootQueryRetrieveInformationModelMove,
            ):
                if not status:
                    raise PacsError(f"the PACS at {self.where} did not answer the C-MOVE")
                final["status"] = int(status.Status)
                for key, attr in (
                    ("completed", "NumberOfCompletedSuboperations"),
                    ("failed", "NumberOfFailedSuboperations"),
                    ("warning", "NumberOfWarningSuboperations"),
                ):
                    if attr in status:
                        final[key] = int(status.get(attr) or 0)
        finally:
            assoc.release()
        return final

    def get(self, study_uid: str, keep: Callable[[bytes], int]) -> dict:
        """C-GET the study; each object is handed to `keep(bytes)` (Part 10,
        with file meta), which answers its C-STORE status."""
        ae = self._ae()
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
        for uid in IMAGE_STORAGE_CLASSES[:127]:
            ae.add_requested_context(uid, list(GET_TRANSFER_SYNTAXES))
        roles = [build_role(uid, scp_role=True) for uid in IMAGE_STORAGE_CLASSES[:127]]

        def on_store(event) -> int:
            return keep(event.encoded_dataset(include_meta=True))

        assoc = self._associate(ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
        final: dict = {"status": None, "completed": 0, "failed": 0, "warning": 0}
        try:
            for status, _identifier in assoc.send_c_get(
                self._study(study_uid), StudyRootQueryRetrieveInformationModelGet
            ):
                if not status:
                    raise PacsError(f"the PACS at {self.where} did not answer the C-GET")
                final["status"] = int(status.Status)
                for key, attr in (
                    ("completed", "NumberOfCompletedSuboperations"),
                    ("failed", "NumberOfFailedSuboperations"),
                    ("warning", "NumberOfWarningSuboperations"),
                ):
                    if attr in status:
                        final[key] = int(status.get(attr) or 0)
        finally:
            assoc.release()
        return final


# ... into a project ----------------------------------------------------------------


def pull(
    project,
    connection_or_client,
    study_uids: Iterable[str],
    *,
    retrieve: str | None = None,
    user=None,
    site=None,
    progress: Callable[[int, int], None] | None = None,
    prebuild_streams: bool = True,
    run_qc: bool = True,
    workers: int | None = None,
):
    """Retrieve each study over DIMSE and import it (de-identified) into `project`.

    `connection_or_client`: a DIMSE PacsConnection (its site is the default site,
    its `retrieve` the default way) or a DimseClient. `retrieve`: "move" or "get".
    Returns one ImportReport; a study the PACS does not have, or cannot deliver,
    is a rejected entry. Raises PacsError when the PACS cannot be reached."""
    from annotation_server.imaging.ingest import pipeline

    if isinstance(connection_or_client, DimseClient):
        client = connection_or_client
        retrieve = retrieve or "move"
    else:
        client = DimseClient.from_connection(connection_or_client)
        site = site or connection_or_client.site
        retrieve = retrieve or connection_or_client.retrieve
    uids = list(study_uids)
    if retrieve == "get":
        return _pull_get(
            project, client, uids, user=user, site=site, progress=progress,
            prebuild_streams=prebuild_streams, run_qc=run_qc, workers=workers,
        )  # fmt: skip
    total = pipeline.ImportReport()
    for k, study_uid in enumerate(uids, 1):
        started = time.time()
        result = client.move(study_uid)
        if result["status"] not in (0x0000, 0xB000) or (
            result["completed"] == 0 and result["warning"] == 0
        ):
            total.files.append(pipeline.FileResult(f"study-{k}", "rejected", _move_refusal(result)))
        else:
            _merge(total, _listener_reports(project, client.ae_title, started))
        if progress:
            progress(k, len(uids))
    return total


def _move_refusal(result: dict) -> str:
    if result["failed"]:
        return ngettext(
            "the PACS could not send %(n)s instance to RefSet's listener "
            "(does it know RefSet's AE title, and is the listener running?)",
            "the PACS could not send %(n)s instances to RefSet's listener "
            "(does it know RefSet's AE title, and is the listener running?)",
            result["failed"],
        ) % {"n": result["failed"]}
    if result["status"] in (0x0000, None):
        return _("the PACS has no study with this UID")
    return _("the PACS refused the C-MOVE (status 0x%(status)04X)") % {"status": result["status"]}


def _listener_reports(project, calling_ae: str, since: float) -> list[dict]:
    """The reports of the listener's import jobs for associations from
    `calling_ae` into `project` since `since` (a time.time()), once finished."""
    from datetime import UTC, datetime

    from annotation_server.jobs.models import Job

    started = datetime.fromtimestamp(since - 1, tz=UTC)
    deadline = time.monotonic() + move_wait_seconds()
    while True:
        jobs = list(
            Job.objects.filter(
                project=project,
                kind="imaging.import",
                params__source="dimse",
                params__calling_ae=calling_ae,
                created_at__gte=started,
            )
        )
        if jobs and all(j.finished for j in jobs):
            break
        if time.monotonic() > deadline:
            raise PacsError(
                _("the listener did not finish importing within %(s)s s")
                % {"s": move_wait_seconds()}
            )
        time.sleep(0.2)
    reports = []
    for job in jobs:
        if job.state == Job.State.SUCCEEDED:
            reports.append(job.result)
        else:
            reports.append(
                {
                    "files": [
                        {"name": f"job-{job.pk}", "status": "rejected", "reason": job.error[:200]}
                    ]
                }
            )
    return reports


def _merge(total, reports: list[dict]) -> None:
    """Add import reports (as_dict form) to `total`."""
    from annotation_server.imaging.ingest.pipeline import FileResult

    fields = ("name", "status", "reason", "series_uid", "sop_uid", "sop_class_uid")
    for report in reports:
        summary = report.get("summary") or {}
        for f in report.get("files", []):
            total.files.append(FileResult(**{k: f.get(k, "") for k in fields}))
        total.studies += summary.get("studies", 0)
        total.series += summary.get("series", 0)
        total.cases.extend(summary.get("cases", []))
        total.patients += summary.get("patients", 0)
        total.event_id = total.event_id or report.get("event_id")


def _pull_get(project, client: DimseClient, uids, *, user, site, progress, **options):
    from annotation_server.imaging.ingest import pipeline
    from annotation_server.imaging.ingest.sources import (
        Budget,
        Candidate,
        Limits,
        Rejection,
        over_budget,
        too_large,
    )

    limits = Limits.from_settings()
    budget = Budget(limits)
    total = pipeline.ImportReport()
    done_before = 0
    scratch = Path(tempfile.mkdtemp(prefix="refset-cget-"))
    try:
        for k, study_uid in enumerate(uids, 1):
            items: list = []

            def keep(data: bytes, k: int = k, items: list = items) -> int:
                name = f"study-{k}/instance-{len(items) + 1:05d}.dcm"
                reason = too_large(len(data), limits)
                if not reason and not budget.take(len(data)):
                    reason = over_budget(budget)
                if reason:
                    items.append(Rejection(name, reason))
                    return 0xA700
                path = scratch / f"{k:05d}-{len(items) + 1:06d}.dcm"
                path.write_bytes(data)
                items.append(Candidate(name, len(data), path.read_bytes))
                return 0x0000

            result = client.get(study_uid, keep)
            if not items:
                total.files.append(
                    pipeline.FileResult(f"study-{k}", "rejected", _move_refusal(result))
                )
                continue

            def step(done: int, count: int, offset: int = done_before) -> None:
                if progress:
                    progress(offset + done, offset + count)

            report = pipeline.ingest(
                project, items, site=site, user=user, source="pacs", progress=step, **options
            )
            done_before += len(items)
            _merge(total, [report.as_dict()])
            for path in scratch.iterdir():
                path.unlink()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return total
