"""Sending one object to a destination and asking whether it is there.

- STOW-RS with dicomweb-client (its own retries off: the outbox's are counted
  and shown; a `requests` session that ignores proxy variables
  from the environment and carries the connection's basic or bearer
  authorization, built by imaging.pacs.PacsClient.from_connection, which also
  checks the operator's allowlist); confirmed by QIDO-RS
  (``/studies/{study}/instances?SOPInstanceUID=...``).
- C-STORE with pynetdicom (imaging.dimse.scu.DimseClient proposes the SEG and
  Comprehensive 3D SR contexts explicitly), confirmed by C-FIND at IMAGE level;
  the query before, the store and the query after share one association.

`deliver` is one attempt: is it there already (then nothing is sent: an earlier
attempt got through), else send, then query; DeliveryError when any step fails.
"""

from __future__ import annotations

import requests
from django.conf import settings
from django.utils.translation import gettext as _
from pydicom.dataset import Dataset

from annotation_server.imaging.pacs import PacsClient, PacsError


class DeliveryError(Exception):
    """One attempt failed; the outbox may try again."""


def timeout() -> float:
    return float(settings.REFSET_OUTBOX_TIMEOUT_S)


def _dicomweb(connection):
    from dicomweb_client.api import DICOMwebClient

    client = PacsClient.from_connection(connection)
    session = requests.Session()
    session.trust_env = False  # no proxies or .netrc from the environment
    session.headers.update(client.headers)
    web = DICOMwebClient(client.base_url, session=session, timeout=timeout())
    # dicomweb-client retries every failed request itself (up to 5 times, with
    # backoff, any exception): the outbox owns retries, counts and shows them.
    web.set_http_retry_params(retry=False)
    return web


def _dimse(connection):
    from annotation_server.imaging.dimse.scu import DimseClient

    return DimseClient.from_connection(connection, timeout=timeout())


def _is_dimse(connection) -> bool:
    return connection.transport == "dimse"


def present(connection, ds: Dataset) -> bool:
    """Whether the destination holds an instance with this SOP Instance UID."""
    study, series, sop = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID)
    try:
        if _is_dimse(connection):
            return _dimse(connection).find_instance(study, series, sop)
        rows = _dicomweb(connection).search_for_instances(
            study_instance_uid=study, search_filters={"SOPInstanceUID": sop}
        )
    except (PacsError, requests.RequestException, OSError, RuntimeError) as exc:
        raise DeliveryError(_("query failed: %(error)s") % {"error": exc}) from exc
    found = {str(((row.get("00080018") or {}).get("Value") or [""])[0]) for row in rows or []}
    return sop in found


OK_STORE = (0x0000, 0xB000, 0xB006, 0xB007)  # success, or stored with a warning


def deliver(connection, ds: Dataset) -> bool:
    """One attempt; returns False when the object was there already (not sent)."""
    if _is_dimse(connection):
        try:
            found, status = _dimse(connection).store_confirmed(ds)
        except (PacsError, OSError, RuntimeError) as exc:
            raise DeliveryError(_("sending failed: %(error)s") % {"error": exc}) from exc
        if status is not None and status not in OK_STORE:
            raise DeliveryError(
                _("the PACS refused the C-STORE (status 0x%(status)04X)") % {"status": status}
            )
        if not found:
            raise DeliveryError(_("sent, but a query does not find it at the destination"))
        return status is not None
    if present(connection, ds):
        return False
    send(connection, ds)
    if not present(connection, ds):
        raise DeliveryError(_("sent, but a query does not find it at the destination"))
    return True


def send(connection, ds: Dataset) -> None:
    """Store `ds` at the destination; raises DeliveryError when it is refused."""
    try:
        if _is_dimse(connection):
            statuses = _dimse(connection).store([ds])
            bad = [s for s in statuses if s not in OK_STORE]
            if bad:
                raise DeliveryError(
                    _("the PACS refused the C-STORE (status 0x%(status)04X)") % {"status": bad[0]}
                )
            return
        answer = _dicomweb(connection).store_instances([ds])
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else "?"
        raise DeliveryError(
            _("the PACS refused the STOW-RS request (HTTP %(code)s)") % {"code": code}
        ) from exc
    except (PacsError, requests.RequestException, OSError, RuntimeError) as exc:
        raise DeliveryError(_("sending failed: %(error)s") % {"error": exc}) from exc
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reason = failed[0].get("FailureReason", "")
        raise DeliveryError(
            _("the PACS did not store the object (failure reason %(reason)s)") % {"reason": reason}
        )
