"""RefSet's DICOM listener: Verification SCP and Storage SCP (pynetdicom).

    listener = Listener(ListenerConfig.from_settings())
    listener.start()        # a server thread; listener.serve() blocks instead
    ...
    listener.stop()

Who may send, and into which project (`route_for`):
- a DicomRoute of a project, active, whose calling AE title is the caller's and
  whose allowed host (IP address or CIDR network) holds the caller's address;
- a DIMSE PacsConnection of a project whose AE title is the caller's and whose host
  resolves to the caller's address: the PACS a C-MOVE was sent to delivers to this
  listener, into the project that asked.
Anyone else is refused at association (A-ASSOCIATE-RJ, rejected-permanent,
"calling AE title not recognised"; "called AE title not recognised" when the
caller asks for another AE title than ours), and the refusal is logged and
audited ("dicom.association_refused", with the calling AE title, its address and
the reason). Two routes of different projects matching one caller is also a
refusal (ambiguous), never a guess.

An accepted association becomes one import: a Job row (kind "imaging.import",
params source "dimse") created at its first C-STORE, listed on the import page
with the others, its log saying how many objects have arrived. Each object is
checked as it arrives by the ingest validator (`prepare.parse`: an image, with the
required UIDs, decodable pixels) and by the import limits (REFSET_MAX_FILE_MB per
object, REFSET_IMPORT_MAX_TOTAL_MB per association). A bad object gets a failure
status at once (0xA900 when it is not the SOP class of its context, 0xA700 over a
limit, 0xC000 otherwise; the reason in Error Comment) and is a rejected line of
the import report; the others are answered 0x0000 and kept. When the association
ends (released or aborted: what was acknowledged is RefSet's to keep), the whole
association goes through the one ingest pipeline (`pipeline.ingest`, source
"dimse"): de-identification before storage, burned-in quarantine, indexing,
cases, the import report and its audit event; the job then holds that report.

PHI on disk: received objects wait for the end of their association in a scratch
folder private to this process (mode 0700, under FILE_UPLOAD_TEMP_DIR or the
system temporary directory), as PACS pulls and STOW-RS requests spool theirs, and
the folder is removed when the import ends, whatever its outcome. pynetdicom
itself keeps each received dataset in memory (its STORE_RECV_CHUNKED_DATASET
option, which would spool to disk, stays off).

If the listener dies in the middle of an association, the job row's lease runs
out and the job is failed as "WorkerLost" (it is created with all its attempts
used, so no worker runs it again: the files were on this process's disk).

Settings (annotation_server/settings.py, from the environment): REFSET_DICOM_AE_TITLE,
REFSET_DICOM_PORT, REFSET_DICOM_BIND, REFSET_DICOM_MAX_ASSOCIATIONS.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import translation
from pydicom.dataset import Dataset
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification

from annotation_server.audit import services as audit
from annotation_server.imaging.dimse.contexts import (
    ACCEPTED_TRANSFER_SYNTAXES,
    IMAGE_STORAGE_CLASSES,
)
from annotation_server.imaging.ingest import prepare
from annotation_server.imaging.ingest.sources import (
    Budget,
    Candidate,
    Limits,
    Rejection,
    over_budget,
    too_large,
)

logger = logging.getLogger(__name__)

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_NOT_SOP_CLASS = 0xA900  # dataset does not match SOP class
STATUS_CANNOT_UNDERSTAND = 0xC000
REJECT_PERMANENT, SOURCE_USER = 0x01, 0x01
CALLING_AE_NOT_RECOGNISED, CALLED_AE_NOT_RECOGNISED = 0x03, 0x07
# A line in the job's log every this many received objects.
LOG_EVERY = 100

# pynetdicom would otherwise spool received datasets to its own temporary files.
_config.STORE_RECV_CHUNKED_DATASET = False


@dataclass(frozen=True)
class ListenerConfig:
    ae_title: str = "REFSET"
    port: int = 11112
    bind: str = "127.0.0.1"
    max_associations: int = 10

    @classmethod
    def from_settings(cls) -> ListenerConfig:
        """REFSET_DICOM_AE_TITLE, REFSET_DICOM_PORT, REFSET_DICOM_BIND and
        REFSET_DICOM_MAX_ASSOCIATIONS from the settings."""
        return cls(
            ae_title=settings.REFSET_DICOM_AE_TITLE,
            port=settings.REFSET_DICOM_PORT,
            bind=settings.REFSET_DICOM_BIND,
            max_associations=settings.REFSET_DICOM_MAX_ASSOCIATIONS,
        )


def own_ae_title() -> str:
    """The listener's AE title: RefSet's calling AE title as an SCU and the
    destination of its C-MOVE requests."""
    return settings.REFSET_DICOM_AE_TITLE


# who may send ----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    project_id: int
    site_id: int | None
    via: str  # "route #N" or "PACS connection #N", for logs and audit


class Refused(Exception):
    """An association the listener refuses; the message is the logged reason."""


def _in_network(address: str, allowed: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
        return ip in ipaddress.ip_network(allowed.strip(), strict=False)
    except ValueError:
        return False


def _resolves_to(host: str, address: str) -> bool:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ipaddress.ip_address(info[4][0].split("%")[0]) == ip for info in infos)


def route_for(calling_ae: str, address: str) -> Route:
    """The project an association from `calling_ae` at `address` imports into;
    raises Refused (with the reason) when there is none or more than one."""
    from annotation_server.imaging.models import DicomRoute, PacsConnection

    calling_ae = calling_ae.strip()
    found: dict[int, Route] = {}
    for route in DicomRoute.objects.filter(active=True, calling_ae_title=calling_ae):
        if _in_network(address, route.allowed_host):
            found.setdefault(
                route.project_id, Route(route.project_id, route.site_id, f"route #{route.pk}")
            )
    pacs = PacsConnection.objects.filter(
        transport=PacsConnection.Transport.DIMSE, ae_title=calling_ae
    )
    for conn in pacs:
        if conn.project_id not in found and _resolves_to(conn.host, address):
            found[conn.project_id] = Route(
                conn.project_id, conn.site_id, f"PACS connection #{conn.pk}"
            )
    if not found:
        raise Refused(f"no active route for calling AE title {calling_ae!r} from {address}")
    if len(found) > 1:
        raise Refused(
            f"calling AE title {calling_ae!r} from {address} is routed to "
            f"{len(found)} projects; refused rather than guessed"
        )
    return next(iter(found.values()))


# one association ---------------------------------------------------------------------


@dataclass
class Receipt:
    """What one accepted association has sent so far, and its import job."""

    route: Route
    calling_ae: str
    address: str
    limits: Limits
    follow_up: bool = True
    scratch: Path | None = None
    items: list = field(default_factory=list)
    received: int = 0
    job_id: int | None = None
    job: object | None = None

    def __post_init__(self) -> None:
        self.budget = Budget(self.limits)

    def name(self) -> str:
        return f"{self.calling_ae}/instance-{len(self.items) + 1:05d}.dcm"

    def _start_job(self) -> None:
        from annotation_server.jobs.services import OwnedJob

        self.job = OwnedJob.start(
            "imaging.import",
            project_id=self.route.project_id,
            params={
                "source": "dimse",
                "calling_ae": self.calling_ae,
                "address": self.address,
                "via": self.route.via,
            },
        )
        self.job_id = self.job.job_id
        self.job.log(
            f"receiving over DIMSE from {self.calling_ae} at {self.address} ({self.route.via})",
        )
        self.scratch = Path(
            tempfile.mkdtemp(
                prefix="refset-dimse-", dir=getattr(settings, "FILE_UPLOAD_TEMP_DIR", None)
            )
        )  # mkdtemp: mode 0700

    def refuse(self, reason: str) -> None:
        if self.job_id is None:
            self._start_job()
        self.items.append(Rejection(self.name(), reason))

    def keep(self, data: bytes) -> None:
        if self.job_id is None:
            self._start_job()
        name = self.name()
        path = self.scratch / f"{len(self.items) + 1:06d}.dcm"
        path.write_bytes(data)
        self.items.append(Candidate(name, len(data), path.read_bytes))
        self.received += 1
        if self.received % LOG_EVERY == 0:
            self.job.log(f"{self.received} objects received")

    def finish(self) -> None:
        """Import what the association sent (one ingest), finish the job, remove
        the scratch folder."""
        if self.job_id is None:
            return
        from annotation_server.imaging.ingest.pipeline import ingest
        from annotation_server.projects.models import Project

        try:
            project = Project.objects.get(pk=self.route.project_id)
            site = None
            if self.route.site_id:
                from annotation_server.accounts.models import Site

                site = Site.objects.filter(pk=self.route.site_id).first()
            self.job.log(
                f"association ended: {self.received} object(s) kept, "
                f"{len(self.items) - self.received} refused; importing",
            )

            def progress(done: int, total: int) -> None:
                self.job.progress(min(95, 95 * done / max(total, 1)))

            with translation.override(settings.LANGUAGE_CODE):
                report = ingest(
                    project,
                    self.items,
                    site=site,
                    source="dimse",
                    progress=progress,
                    prebuild_streams=self.follow_up,
                    run_qc=self.follow_up,
                )
            s = report.summary()
            self.job.log(
                f"{s['imported']} imported, {s['duplicates']} duplicates, "
                f"{s['quarantined']} quarantined, {s['rejected']} rejected",
            )
            result = report.as_dict()
            result["dimse"] = {"calling_ae": self.calling_ae, "address": self.address}
            self.job.succeed(result)
        except Exception as exc:
            logger.exception("import of the association from %s failed", self.calling_ae)
            self.job.fail(f"{exc!r}")
        finally:
            if self.scratch is not None:
                shutil.rmtree(self.scratch, ignore_errors=True)


def _check(data: bytes, context_class: str) -> tuple[int, str]:
    """The ingest validator's verdict on one received object: (status, reason)."""
    try:
        ds = prepare.parse(data)
    except prepare.FileRejected as exc:
        return STATUS_CANNOT_UNDERSTAND, str(exc)
    if str(ds.SOPClassUID) != context_class:
        return STATUS_NOT_SOP_CLASS, "SOP Class UID differs from the presentation context's"
    return STATUS_SUCCESS, ""


# the AE ------------------------------------------------------------------------------


class Listener:
    """One pynetdicom AE serving Verification and Storage on (bind, port)."""

    def __init__(self, config: ListenerConfig | None = None, *, follow_up: bool = True):
        """`follow_up`: queue the jobs an import queues (series stream pre-build,
        image QC); benchmarks of the import alone turn it off."""
        self.config = config or ListenerConfig.from_settings()
        self.follow_up = follow_up
        self.ae = AE(ae_title=self.config.ae_title)
        self.ae.maximum_associations = self.config.max_associations
        self.ae.add_supported_context(Verification)
        for uid in IMAGE_STORAGE_CLASSES:
            self.ae.add_supported_context(uid, list(ACCEPTED_TRANSFER_SYNTAXES))
        self.server = None
        self._receipts: dict[int, Receipt] = {}
        self._lock = threading.Lock()
        self.handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_RELEASED, self._on_end),
            (evt.EVT_ABORTED, self._on_end),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]
        self._imports: list[threading.Thread] = []

    @property
    def port(self) -> int:
        if self.server is not None:
            return self.server.server_address[1]
        return self.config.port

    def start(self):
        """Serve in a background thread; returns the pynetdicom server."""
        self.server = self.ae.start_server(
            (self.config.bind, self.config.port), block=False, evt_handlers=self.handlers
        )
        logger.info("DICOM listener %s on %s:%s", self.config.ae_title, self.config.bind, self.port)
        return self.server

    def serve(self) -> None:
        """Serve in this thread until interrupted."""
        self.ae.start_server(
            (self.config.bind, self.config.port), block=True, evt_handlers=self.handlers
        )

    def stop(self, timeout: float = 60.0) -> None:
        """Stop taking associations; wait (up to `timeout` s) for those in progress
        to end and their imports to finish."""
        if self.server is None:
            return
        running = list(self.server.active_associations)
        self.server.shutdown()
        self.server = None
        for thread in running:
            thread.join(timeout)
        with self._lock:
            imports = list(self._imports)
        for thread in imports:
            thread.join(timeout)

    # events --------------------------------------------------------------------

    def _on_requested(self, event) -> None:
        assoc = event.assoc
        primitive = assoc.requestor.primitive
        calling = str(primitive.calling_ae_title).strip()
        called = str(primitive.called_ae_title).strip()
        address = assoc.requestor.address
        try:
            if called != self.config.ae_title:
                diagnostic = CALLED_AE_NOT_RECOGNISED
                raise Refused(
                    f"called AE title {called!r} is not this listener's ({self.config.ae_title!r})"
                )
            diagnostic = CALLING_AE_NOT_RECOGNISED
            route = route_for(calling, address)
        except Refused as exc:
            logger.warning("DICOM association from %s at %s refused: %s", calling, address, exc)
            try:
                audit.record(
                    "dicom.association_refused",
                    data={
                        "calling_ae": calling,
                        "called_ae": called,
                        "address": address,
                        "reason": str(exc),
                    },
                )
            finally:
                assoc.acse.send_reject(REJECT_PERMANENT, SOURCE_USER, diagnostic)
                assoc.kill()  # waits until the A-ASSOCIATE-RJ is out, as pynetdicom's own
                connection.close()
            return
        logger.info("DICOM association from %s at %s accepted (%s)", calling, address, route.via)
        with self._lock:
            self._receipts[id(assoc)] = Receipt(
                route, calling, address, Limits.from_settings(), follow_up=self.follow_up
            )

    def _on_echo(self, event) -> int:
        return STATUS_SUCCESS

    def _on_store(self, event) -> int | Dataset:
        with translation.override("en"):
            return self._store(event)

    def _store(self, event) -> int | Dataset:
        receipt = self._receipts.get(id(event.assoc))
        if receipt is None:  # cannot happen: refused associations never get here
            return STATUS_CANNOT_UNDERSTAND
        data = event.encoded_dataset(include_meta=True)
        status, reason = STATUS_SUCCESS, ""
        size_reason = too_large(len(data), receipt.limits)
        if size_reason:
            status, reason = STATUS_OUT_OF_RESOURCES, size_reason
        elif not receipt.budget.take(len(data)):
            status, reason = STATUS_OUT_OF_RESOURCES, over_budget(receipt.budget)
        else:
            status, reason = _check(data, str(event.context.abstract_syntax))
            if status != STATUS_SUCCESS:
                receipt.budget.used -= len(data)
        if status == STATUS_SUCCESS:
            receipt.keep(data)
            return STATUS_SUCCESS
        # The report in the site's language; Error Comment (LO, default character
        # repertoire) in English.
        with translation.override(settings.LANGUAGE_CODE):
            receipt.refuse(_check(data, str(event.context.abstract_syntax))[1] or reason)
        answer = Dataset()
        answer.Status = status
        answer.ErrorComment = reason.encode("ascii", "replace").decode()[:64]
        return answer

    def _on_end(self, event) -> None:
        """Released or aborted, in the association's own thread: its database
        connection (route lookup, the job row) is closed with it."""
        connection.close()

    def _on_close(self, event) -> None:
        """The connection closed (whatever ended it; pynetdicom may say so from its
        transport thread): import the association, once its thread has ended, in a
        thread of its own."""
        with self._lock:
            receipt = self._receipts.pop(id(event.assoc), None)
        if receipt is None:
            return
        assoc = event.assoc

        def run() -> None:
            try:
                if assoc is not threading.current_thread() and assoc.is_alive():
                    assoc.join()
                receipt.finish()
            finally:
                connection.close()

        thread = threading.Thread(target=run, name="refset-dimse-import", daemon=True)
        with self._lock:
            self._imports = [t for t in self._imports if t.is_alive()] + [thread]
        thread.start()
