"""Writing and verifying the audit log."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from annotation_server.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant: the advisory lock that serialises appends on PostgreSQL.
_AUDIT_LOCK_KEY = 7_431_977


def _canonical(event_fields: dict) -> bytes:
    return json.dumps(event_fields, sort_keys=True, separators=(",", ":"), default=str).encode()


def compute_hash(prev_hash: str, fields: dict) -> str:
    return hashlib.sha256(prev_hash.encode() + _canonical(fields)).hexdigest()


def _fields(event: AuditEvent) -> dict:
    return {
        "created_at": event.created_at.isoformat(),
        "actor_id": event.actor_id,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "project_id": event.project_id,
        "data": event.data,
    }


def record(
    action: str,
    *,
    actor=None,
    obj=None,
    project_id: int | None = None,
    data: dict | None = None,
) -> AuditEvent:
    """Append one event. Runs inside the caller's transaction (or its own)."""
    actor_id = getattr(actor, "pk", None) if actor is not None and actor.is_authenticated else None
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", [_AUDIT_LOCK_KEY])
        last = AuditEvent.objects.order_by("-id").only("hash").first()
        prev_hash = last.hash if last else GENESIS_HASH
        event = AuditEvent(
            created_at=timezone.now(),
            actor_id=actor_id,
            action=action,
            object_type=obj._meta.label_lower if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            project_id=project_id,
            data=json.loads(json.dumps(data or {}, default=str)),
            prev_hash=prev_hash,
        )
        event.hash = compute_hash(prev_hash, _fields(event))
        event.save()
    return event


@dataclass
class ChainReport:
    checked: int
    ok: bool
    first_bad_id: int | None = None
    problem: str = ""


def verify_chain(progress=None, batch: int = 2000) -> ChainReport:
    """Recompute every hash in order. `progress(done, total)` is called per batch."""
    total = AuditEvent.objects.count()
    prev_hash = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=batch):
        if event.prev_hash != prev_hash:
            return ChainReport(checked, False, event.id, "previous-hash link broken")
        if compute_hash(prev_hash, _fields(event)) != event.hash:
            return ChainReport(checked, False, event.id, "row content does not match its hash")
        prev_hash = event.hash
        checked += 1
        if progress and checked % batch == 0:
            progress(checked, total)
    return ChainReport(checked, True)
