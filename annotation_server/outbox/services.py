"""The outbox: queueing objects for a destination and delivering them.

Queueing (`queue_case_reference`, `queue_version`) builds the objects (outbox.build),
stores each de-identified object once under ``outbox/<project>/<sha256>.dcm``,
and makes one OutboxItem per object and destination (the same SOP Instance UID
queued again adds nothing; a failed or cancelled row is queued again). Each item
gets an ``outbox.deliver`` job, dispatched after the transaction commits.

Rules for a hospital destination (the objects go back re-identified): the
destination must be marked inside the hospital by a manager, and the user who
queues (or retries) must hold imaging.view_identity_key; both are checked when
queueing and again at each sending attempt (the sender re-identifies as that
user, each look-up audited). A research archive gets the stored de-identified
object as it is.

Delivery (`deliver`, the job's body) is idempotent: it claims the item with a
conditional UPDATE (pending -> sending; or an item left sending by this same job,
when a dead worker's job is run again), asks the destination whether the SOP
Instance UID is already there (then it is delivered: nothing is sent twice),
otherwise sends it, and marks it delivered only once a query finds it. A failed
attempt puts the item back to pending with its error and the time of the next
attempt; the job waits REFSET_OUTBOX_BACKOFF_S, doubling each time (at most
REFSET_OUTBOX_MAX_DELAY_S), and claims it again, up to
REFSET_OUTBOX_MAX_ATTEMPTS attempts; then the item is failed. A manager may
cancel a pending or failed item, or retry a failed or cancelled one.
"""

from __future__ import annotations

import hashlib
import io
import logging
import time
from datetime import timedelta

import pydicom
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.jobs import services as jobs
from annotation_server.outbox import build, transport
from annotation_server.outbox.models import Destination, OutboxItem
from annotation_server.outbox.reidentify import ReidentificationError, Reidentifier

logger = logging.getLogger(__name__)

Status = OutboxItem.Status


class OutboxRefused(DomainError):
    status = 403
    code = "outbox_refused"


class OutboxConflict(DomainError):
    status = 409
    code = "outbox_conflict"


def max_attempts() -> int:
    return max(1, int(settings.REFSET_OUTBOX_MAX_ATTEMPTS))


def backoff(attempts: int) -> float:
    """Seconds to wait after the `attempts`-th failed attempt."""
    base = float(settings.REFSET_OUTBOX_BACKOFF_S)
    return min(base * 2 ** max(attempts - 1, 0), float(settings.REFSET_OUTBOX_MAX_DELAY_S))


def may_reidentify(user) -> bool:
    return bool(user and user.is_active and user.has_perm("imaging.view_identity_key"))


def check_destination(destination: Destination, user) -> None:
    """Refuse a hospital destination not marked inside the hospital, or a user
    without the key-store permission."""
    if destination.kind != Destination.Kind.HOSPITAL:
        return
    if not destination.inside_hospital:
        raise OutboxRefused(
            _(
                "Destination %(name)s is not marked as inside the hospital: "
                "re-identified objects go only there."
            )
            % {"name": destination.name}
        )
    if not may_reidentify(user):
        raise OutboxRefused(
            _(
                "Sending re-identified objects to a hospital PACS needs the key-store "
                "permission (original identifiers)."
            )
        )


def mark_inside_hospital(destination: Destination, user, inside: bool) -> Destination:
    with transaction.atomic():
        destination.inside_hospital = inside
        destination.marked_by = user if inside else None
        destination.marked_at = timezone.now() if inside else None
        destination.save(update_fields=["inside_hospital", "marked_by", "marked_at"])
        audit.record(
            "outbox.destination_marked_inside" if inside else "outbox.destination_unmarked",
            actor=user,
            obj=destination,
            project_id=destination.project_id,
            data={"name": destination.name, "address": destination.connection.address},
        )
    return destination


# Queueing -----------------------------------------------------------------------------


def _store(project_id: int, data: bytes) -> tuple[str, str]:
    sha = hashlib.sha256(data).hexdigest()
    key = f"outbox/{project_id}/{sha}.dcm"
    if not default_storage.exists(key):
        saved = default_storage.save(key, ContentFile(data))
        if saved != key:  # written at the same time by another request: keep one
            default_storage.delete(saved)
    return sha, key


def _queue(destination: Destination, objects: list[build.Built], user, **carries):
    project = destination.project
    stored = [(obj, *_store(project.pk, obj.data)) for obj in objects]
    items = []
    with transaction.atomic():
        for obj, sha, key in stored:
            item, created = OutboxItem.objects.select_for_update().get_or_create(
                destination=destination,
                sop_instance_uid=obj.sop_instance_uid,
                defaults={
                    "project": project,
                    "transport": destination.transport,
                    "sop_class_uid": obj.sop_class_uid,
                    "study_uid": obj.study_uid,
                    "series_uid": obj.series_uid,
                    "sha256": sha,
                    "object_key": key,
                    "size_bytes": len(obj.data),
                    "carries": obj.carries,
                    "case_id": obj.case_id,
                    "created_by": user,
                    **carries,
                },
            )
            if not created and item.status not in (Status.FAILED, Status.CANCELLED):
                items.append(item)  # pending, sending or delivered: nothing to add
                continue
            if not created:
                item.status, item.attempts, item.last_error = Status.PENDING, 0, ""
                item.next_attempt_at, item.created_by = None, user
                item.sha256, item.object_key, item.size_bytes = sha, key, len(obj.data)
            _start(item, user)
            items.append(item)
        audit.record(
            "outbox.queued",
            actor=user,
            obj=destination,
            project_id=project.pk,
            data={
                "destination": destination.name,
                "kind": destination.kind,
                "objects": [i.sop_instance_uid for i in items],
                **{k: getattr(v, "pk", v) for k, v in carries.items()},
            },
        )
    return items


def _start(item: OutboxItem, user) -> None:
    item.save()
    item.job = jobs.enqueue(
        "outbox.deliver", params={"item": item.pk}, project=item.destination.project, user=user
    )
    item.save(update_fields=["job"])


def check_case(case, destination: Destination, user) -> None:
    """What is refused before a case is sent (in the request, and again in the job)."""
    if destination.project_id != case.project_id:
        raise OutboxConflict(_("This destination belongs to another project."))
    check_destination(destination, user)


def queue_case_reference(case, destination: Destination, user) -> list[OutboxItem]:
    """Queue `case`'s current reference standard (SEG and SR) for `destination`,
    with each submitted read's and the model's proposals' SEG and SR when the
    project's protocol writes them back (ReadingProtocol.writeback_reads)."""
    from annotation_server.projects.models import ReadingProtocol

    check_case(case, destination, user)
    protocol = ReadingProtocol.objects.filter(project_id=case.project_id).first()
    what = protocol.writeback_reads if protocol else ReadingProtocol.WritebackReads.REFERENCE
    objects, digest = build.case_objects(
        case,
        hospital=destination.reidentifies,
        reads=what != ReadingProtocol.WritebackReads.REFERENCE,
        model=what == ReadingProtocol.WritebackReads.MODEL,
    )
    return _queue(destination, objects, user, case=case, reference_digest=digest)


def send_case(case, destination: Destination, user):
    """Check, then enqueue the `outbox.queue_case` job that builds and queues the
    case's objects (after the transaction commits); returns the job."""
    check_case(case, destination, user)
    return jobs.enqueue(
        "outbox.queue_case",
        params={"case": case.pk, "destination": destination.pk},
        project=destination.project,
        user=user,
    )


def queue_version(version, destination: Destination, user) -> list[OutboxItem]:
    """Queue a frozen version's reference SEG and SR, with its de-identified
    images, for a research archive."""
    from annotation_server.datasets.querysets import may_see_sequestered

    if destination.project_id != version.project_id:
        raise OutboxConflict(_("This destination belongs to another project."))
    if destination.kind != Destination.Kind.RESEARCH:
        raise OutboxConflict(_("A frozen version goes to a research archive only."))
    if not version.frozen:
        raise OutboxConflict(_("Only a frozen version can be sent."))
    objects = build.version_objects(
        version, sequestered=may_see_sequestered(user), with_images=True
    )
    return _queue(destination, objects, user, dataset_version=version)


# Manager actions ----------------------------------------------------------------------


def retry(item: OutboxItem, user) -> OutboxItem:
    check_destination(item.destination, user)
    with transaction.atomic():
        changed = OutboxItem.objects.filter(
            pk=item.pk, status__in=[Status.FAILED, Status.CANCELLED]
        ).update(status=Status.PENDING, attempts=0, next_attempt_at=None, created_by=user)
        if not changed:
            raise OutboxConflict(_("Only a failed or cancelled item can be retried."))
        item.refresh_from_db()
        _start(item, user)
        audit.record(
            "outbox.retried",
            actor=user,
            obj=item,
            project_id=item.project_id,
            data={"sop_instance_uid": item.sop_instance_uid, "destination": item.destination.name},
        )
    return item


def cancel(item: OutboxItem, user) -> OutboxItem:
    with transaction.atomic():
        changed = OutboxItem.objects.filter(
            pk=item.pk, status__in=[Status.PENDING, Status.FAILED]
        ).update(status=Status.CANCELLED, next_attempt_at=None)
        if not changed:
            raise OutboxConflict(_("Only a pending or failed item can be cancelled."))
        audit.record(
            "outbox.cancelled",
            actor=user,
            obj=item,
            project_id=item.project_id,
            data={"sop_instance_uid": item.sop_instance_uid, "destination": item.destination.name},
        )
    item.refresh_from_db()
    return item


# Delivery -----------------------------------------------------------------------------


def _claim(item_id: int, job_id: int | None) -> OutboxItem | None:
    """pending -> sending (or take over an item this job left sending), or None."""
    mine = Q(status=Status.SENDING, job_id=job_id) if job_id else Q(pk__in=[])
    changed = (
        OutboxItem.objects.filter(pk=item_id)
        .filter(Q(status=Status.PENDING) | mine)
        .update(status=Status.SENDING, job_id=job_id, next_attempt_at=None)
    )
    if not changed:
        return None
    return OutboxItem.objects.select_related("destination__connection").get(pk=item_id)


def _dataset(item: OutboxItem) -> pydicom.Dataset:
    with default_storage.open(item.object_key, "rb") as fh:
        data = fh.read()
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise ReidentificationError(_("The stored object does not match its hash."))
    ds = pydicom.dcmread(io.BytesIO(data))
    destination = item.destination
    if destination.reidentifies:
        user = get_user_model().objects.filter(pk=item.created_by_id).first()
        check_destination(destination, user)
        Reidentifier(
            item.project,
            user,
            reason=_("write-back of %(what)s to %(name)s")
            % {"what": item.get_carries_display(), "name": destination.name},
        ).apply(ds)
    return ds


def _attempt(item: OutboxItem) -> None:
    # already there (an earlier attempt got through): not sent again
    transport.deliver(item.destination.connection, _dataset(item))


def deliver(item_id: int, job_id: int | None = None, *, log=None) -> dict:
    """Deliver one item: claim, send, confirm; retry with backoff; see the module."""
    while True:
        item = _claim(item_id, job_id)
        if item is None:
            status = OutboxItem.objects.filter(pk=item_id).values_list("status", flat=True).first()
            return {"item": item_id, "status": status, "claimed": False}
        attempts = item.attempts + 1
        try:
            _attempt(item)
        except (OutboxRefused, PermissionDenied, ReidentificationError) as exc:
            _fail(item, attempts, str(getattr(exc, "message", exc)))
            return {"item": item_id, "status": Status.FAILED, "attempts": attempts}
        except transport.DeliveryError as exc:
            message = str(exc)[:2000]
            if log:
                log(f"attempt {attempts} of item {item_id} failed: {message}")
            if attempts >= max_attempts():
                _fail(item, attempts, message)
                return {"item": item_id, "status": Status.FAILED, "attempts": attempts}
            delay = backoff(attempts)
            OutboxItem.objects.filter(pk=item_id, status=Status.SENDING).update(
                status=Status.PENDING,
                attempts=attempts,
                last_error=message,
                next_attempt_at=timezone.now() + timedelta(seconds=delay),
            )
            time.sleep(delay)
            continue
        with transaction.atomic():
            OutboxItem.objects.filter(pk=item_id, status=Status.SENDING).update(
                status=Status.DELIVERED,
                attempts=attempts,
                last_error="",
                delivered_at=timezone.now(),
            )
            audit.record(
                "outbox.delivered",
                actor=item.created_by,
                obj=item,
                project_id=item.project_id,
                data={
                    "sop_instance_uid": item.sop_instance_uid,
                    "destination": item.destination.name,
                    "kind": item.destination.kind,
                    "transport": item.transport,
                    "attempts": attempts,
                },
            )
        return {"item": item_id, "status": Status.DELIVERED, "attempts": attempts}


def _fail(item: OutboxItem, attempts: int, message: str) -> None:
    OutboxItem.objects.filter(pk=item.pk, status=Status.SENDING).update(
        status=Status.FAILED, attempts=attempts, last_error=message[:2000], next_attempt_at=None
    )
