"""Writing, anchoring and verifying the audit log.

The chain. Every event carries the SHA-256 of the one before it (`record`), so
editing or removing a row breaks the chain from that row on (`verify_chain`).
The database refuses UPDATE and DELETE on the table (triggers: migration 0002 on
PostgreSQL, 0003 on SQLite), and the model refuses them too.

Writing. `record` runs inside the caller's transaction (its `atomic` is a
savepoint there), so the event and the action it describes commit together or
not at all. If the event cannot be written the error propagates, and when the
caller's transaction is still open it is marked for rollback as well: even a
caller that swallows the error cannot commit its action without the event.
Appends are serialised (an advisory lock on PostgreSQL; on SQLite every
transaction takes the write lock when it begins, see DATABASES in settings), so
concurrent writers wait for each other instead of losing events.

The anchors. A chain alone cannot show that its newest rows were cut off, nor
that someone with database access rewrote a row and recomputed every later
hash: the result is again a valid chain. `write_anchor` therefore records a
checkpoint of the chain's head -- {count, head_id, head_hash, created_at},
signed with HMAC-SHA256 (settings.REFSET_AUDIT_ANCHOR_KEY, or a key derived from
SECRET_KEY with its own salt) -- outside the table: one file per anchor in the
default storage under `audit/anchors/` (the storage API only, so S3 works as
well as local disk) and one line on the logger "refset.audit.anchor" (a second
copy, for a log collector). `verify_chain` checks every stored anchor: its
signature, that its head row exists with that hash, and that as many rows lead
up to it. The latest anchor alone detects truncation and re-hashing of every row
before its head; the older ones narrow down where the rewrite happened and still
protect their prefix when newer anchor files are deleted.

What anchors cannot protect: rows written after the latest anchor (anchor often:
`manage.py anchor_audit` or the job "audit.anchor" from cron); deletion of every
anchor file together with the rows (the log copy is the fallback, so ship the
log elsewhere); and an attacker who holds the anchor key as well as the database
and the storage, who can sign new anchors for a rewritten chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from annotation_server.audit.models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant: the advisory lock that serialises appends on PostgreSQL.
_AUDIT_LOCK_KEY = 7_431_977
ANCHOR_DIR = "audit/anchors"
_ANCHOR_SALT = "refset.audit.anchor"
_ANCHOR_VERSION = 1

anchor_log = logging.getLogger("refset.audit.anchor")


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
    """Append one event, inside the caller's transaction (or its own).

    Never fails quietly: the error propagates, and an enclosing transaction is
    marked for rollback, so the action cannot commit without its event."""
    actor_id = getattr(actor, "pk", None) if actor is not None and actor.is_authenticated else None
    try:
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
    except BaseException:
        if connection.in_atomic_block:
            transaction.set_rollback(True)
        raise
    return event


# ---------------------------------------------------------------- anchors


class AnchorError(Exception):
    """An anchor file cannot be read or its signature does not match."""


class AuditChainBroken(Exception):
    """The chain failed verification, so no anchor is written over it."""


@dataclass(frozen=True)
class Anchor:
    count: int
    head_id: int | None
    head_hash: str
    created_at: str
    name: str = ""  # where it is stored

    def payload(self) -> dict:
        return {
            "version": _ANCHOR_VERSION,
            "count": self.count,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "created_at": self.created_at,
        }


def _anchor_secrets() -> list[str]:
    """The dedicated key, else SECRET_KEY and its fallbacks (with the anchor salt)."""
    key = getattr(settings, "REFSET_AUDIT_ANCHOR_KEY", "")
    if key:
        return [key]
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def sign_anchor(payload: dict, secret: str | None = None) -> str:
    secret = secret if secret is not None else _anchor_secrets()[0]
    return salted_hmac(_ANCHOR_SALT, _canonical(payload), secret, algorithm="sha256").hexdigest()


def _signature_valid(payload: dict, signature: str) -> bool:
    return any(
        hmac.compare_digest(sign_anchor(payload, secret), signature) for secret in _anchor_secrets()
    )


def current_head() -> tuple[int, int | None, str]:
    """(count, head_id, head_hash) of the committed chain.

    Ids are drawn while appends are serialised, so every row below the newest
    committed one is committed too: the count up to it is consistent."""
    head = AuditEvent.objects.order_by("-id").only("id", "hash").first()
    if head is None:
        return 0, None, GENESIS_HASH
    return AuditEvent.objects.filter(id__lte=head.id).count(), head.id, head.hash


def write_anchor() -> Anchor:
    """Sign a checkpoint of the chain's head; store it and log it. Returns it."""
    count, head_id, head_hash = current_head()
    now = timezone.now()
    anchor = Anchor(count, head_id, head_hash, now.isoformat())
    payload = anchor.payload()
    signature = sign_anchor(payload)
    body = json.dumps({"anchor": payload, "signature": signature}, indent=1, sort_keys=True)
    wanted = f"{ANCHOR_DIR}/{now.strftime('%Y%m%dT%H%M%S%fZ')}-{count:012d}.json"
    try:
        name = default_storage.save(wanted, ContentFile(body.encode()))
    except OSError:
        # A write cut off (a full disk) must not leave a partial anchor behind:
        # verification would report it as tampering. The log line is not written
        # either, so the anchor simply does not exist.
        if default_storage.exists(wanted):
            default_storage.delete(wanted)
        raise
    anchor_log.info(
        "audit anchor %s",
        json.dumps({"anchor": payload, "signature": signature, "stored_as": name}, sort_keys=True),
    )
    return Anchor(count, head_id, head_hash, anchor.created_at, name)


def _read_anchor(name: str) -> Anchor:
    try:
        with default_storage.open(name, "rb") as fh:
            doc = json.loads(fh.read())
        payload, signature = doc["anchor"], doc["signature"]
        anchor = Anchor(
            count=int(payload["count"]),
            head_id=None if payload["head_id"] is None else int(payload["head_id"]),
            head_hash=str(payload["head_hash"]),
            created_at=str(payload["created_at"]),
            name=name,
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AnchorError(f"anchor {name} cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(signature, str) or not _signature_valid(payload, signature):
        raise AnchorError(
            f"anchor {name} (of {anchor.created_at}): signature invalid -- the file was changed, "
            "or signed with another key than REFSET_AUDIT_ANCHOR_KEY"
        )
    if payload != anchor.payload():
        raise AnchorError(f"anchor {name}: unexpected fields")
    return anchor


def anchor_names() -> list[str]:
    try:
        _dirs, files = default_storage.listdir(ANCHOR_DIR)
    except FileNotFoundError:
        return []
    return sorted(f"{ANCHOR_DIR}/{f}" for f in files if f.endswith(".json"))


def load_anchors() -> list[Anchor]:
    """Every stored anchor, oldest first; AnchorError on the first bad one."""
    return [_read_anchor(name) for name in anchor_names()]


# ---------------------------------------------------------------- verification


@dataclass
class ChainReport:
    checked: int
    ok: bool
    first_bad_id: int | None = None
    problem: str = ""
    anchors: int = 0  # anchors checked
    latest_anchor: Anchor | None = None
    unanchored: int = 0  # rows after the latest anchor's head


def verify_chain(progress=None, batch: int = 2000, anchors: bool = True) -> ChainReport:
    """Recompute every hash in order and check every stored anchor against it.

    `progress(done, total)` is called per batch. With anchors=False only the
    chain itself is checked (which a rewrite with re-hashing passes)."""
    try:
        stored = load_anchors() if anchors else []
    except AnchorError as exc:
        return ChainReport(0, False, None, str(exc))
    latest = max(stored, key=lambda a: (a.count, a.created_at), default=None)
    # Anchors of an empty chain say nothing; the rest in the order their heads come.
    pending = sorted((a for a in stored if a.head_id is not None), key=lambda a: a.head_id)
    total = AuditEvent.objects.count()  # for progress only; the anchors were read first
    prev_hash = GENESIS_HASH
    checked = 0
    confirmed: Anchor | None = None  # the newest anchor the rows agreed with

    def bad(row_id, problem) -> ChainReport:
        return ChainReport(checked, False, row_id, problem, len(stored), latest)

    def missing(anchor: Anchor) -> ChainReport:
        said = f"it counts {anchor.count} rows up to row #{anchor.head_id}, but that row is missing"
        if checked < anchor.count:
            return bad(
                anchor.head_id,
                f"fewer rows than the anchor of {anchor.created_at} says (truncation): "
                f"{said} and only {checked} rows come before it",
            )
        return bad(
            anchor.head_id,
            f"the head row of the anchor of {anchor.created_at} is gone (rows replaced): {said}",
        )

    idx = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=batch):
        if idx < len(pending) and pending[idx].head_id < event.id:
            return missing(pending[idx])
        if event.prev_hash != prev_hash:
            return bad(event.id, "previous-hash link broken")
        if compute_hash(prev_hash, _fields(event)) != event.hash:
            return bad(event.id, "row content does not match its hash")
        prev_hash = event.hash
        checked += 1
        while idx < len(pending) and pending[idx].head_id == event.id:
            anchor = pending[idx]
            if event.hash != anchor.head_hash:
                since = f"after row #{confirmed.head_id}" if confirmed else f"up to row #{event.id}"
                return bad(
                    event.id,
                    f"head hash at row #{event.id} differs from the anchor of "
                    f"{anchor.created_at}: rows {since} were rewritten and re-hashed",
                )
            if checked != anchor.count:
                return bad(
                    event.id,
                    f"{checked} rows up to row #{event.id}, but the anchor of "
                    f"{anchor.created_at} counts {anchor.count}",
                )
            confirmed = anchor
            idx += 1
        if progress and checked % batch == 0:
            progress(checked, total)
    if idx < len(pending):
        return missing(pending[idx])
    unanchored = checked - (latest.count if latest else 0)
    return ChainReport(checked, True, None, "", len(stored), latest, unanchored)


def verify_then_anchor(progress=None) -> tuple[ChainReport, Anchor]:
    """Anchor only a chain that verifies: an anchor vouches for what it signs."""
    report = verify_chain(progress=progress)
    if not report.ok:
        where = f"row #{report.first_bad_id}: " if report.first_bad_id is not None else ""
        raise AuditChainBroken(f"{where}{report.problem}")
    return report, write_anchor()
