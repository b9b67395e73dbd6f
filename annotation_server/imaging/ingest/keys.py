"""The de-identification key store: per-project secrets and the map back to
original identifiers, encrypted with REFSET_KEY_ENCRYPTION_KEY and kept apart
from the images. Reading an original needs imaging.view_identity_key and is
audited."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import secrets

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import IntegrityError, transaction

from annotation_server.audit import services as audit
from annotation_server.imaging.models import IdentityMapping, ProjectKey

logger = logging.getLogger(__name__)


def _fernet() -> Fernet:
    return _fernet_for(settings.REFSET_KEY_ENCRYPTION_KEY, settings.DEBUG, settings.SECRET_KEY)


@functools.lru_cache(maxsize=4)
def _fernet_for(raw: str, debug: bool, secret_key: str) -> Fernet:
    if not raw:
        if not debug:
            raise ImproperlyConfigured(
                "REFSET_KEY_ENCRYPTION_KEY must be set (a Fernet key: "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())')"
            )
        # Demo only: derive a key from the (demo) secret key, and say so.
        logger.warning("REFSET_KEY_ENCRYPTION_KEY unset: deriving the key-store key (demo only)")
        raw = base64.urlsafe_b64encode(hashlib.sha256(secret_key.encode()).digest())
    try:
        return Fernet(raw)
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "REFSET_KEY_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes)."
        ) from None


def project_secret(project) -> bytes:
    """The project's de-identification secret, created on first use."""
    key = ProjectKey.objects.filter(project=project).first()
    if key is None:
        secret = secrets.token_bytes(32)
        try:
            with transaction.atomic():
                key = ProjectKey.objects.create(
                    project=project, secret_encrypted=_fernet().encrypt(secret).decode()
                )
        except IntegrityError:
            key = ProjectKey.objects.get(project=project)
    try:
        return _fernet().decrypt(key.secret_encrypted.encode())
    except InvalidToken:
        raise ImproperlyConfigured(
            f"The de-identification key of project {project.slug} cannot be decrypted: "
            "REFSET_KEY_ENCRYPTION_KEY differs from the one it was stored with."
        ) from None


def _digest(secret: bytes, kind: str, original: str) -> str:
    return hmac.new(secret, f"{kind}\x00{original}".encode(), hashlib.sha256).hexdigest()


def mapping_of(project, kind: str, original: str) -> IdentityMapping | None:
    """The project's key-store entry for an original identifier (found by its keyed
    digest, so the original is not decrypted), or None."""
    digest = _digest(project_secret(project), kind, original)
    return IdentityMapping.objects.filter(
        project=project, kind=kind, original_digest=digest
    ).first()


class MappingRecorder:
    """Collects identity mappings during an import and writes each new one once,
    in batches (a series repeats the same patient, study and series ids)."""

    def __init__(self, project, secret: bytes, batch: int = 500):
        self.project = project
        self.secret = secret
        self.batch = batch
        self.seen: set[tuple[str, str]] = set()
        self.pending: list[IdentityMapping] = []
        self.written = 0

    def add(self, mappings) -> None:
        for m in mappings:
            digest = _digest(self.secret, m.kind, m.original)
            if (m.kind, digest) in self.seen:
                continue
            self.seen.add((m.kind, digest))
            self.pending.append(
                IdentityMapping(
                    project=self.project,
                    kind=m.kind,
                    original_digest=digest,
                    original_encrypted=_fernet().encrypt(m.original.encode()).decode(),
                    replacement=m.replacement,
                )
            )
        if len(self.pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            IdentityMapping.objects.bulk_create(
                self.pending, ignore_conflicts=True, batch_size=self.batch
            )
            self.written += len(self.pending)
            self.pending = []


def reveal(user, mapping: IdentityMapping, *, reason: str) -> str:
    """The original identifier behind a replacement: permission-checked and audited."""
    if not user.has_perm("imaging.view_identity_key"):
        raise PermissionDenied("Reading original identifiers needs imaging.view_identity_key.")
    if not reason.strip():
        raise PermissionDenied("Say why you need the original identifier.")
    original = _fernet().decrypt(mapping.original_encrypted.encode()).decode()
    audit.record(
        "identity.revealed",
        actor=user,
        obj=mapping,
        project_id=mapping.project_id,
        data={"kind": mapping.kind, "replacement": mapping.replacement, "reason": reason},
    )
    return original
