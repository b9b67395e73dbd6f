"""Invitation links: a manager creates an account without a password and hands the
invitee a link (no mail server needed: the link is shown once, to be passed on).

The token is signed (django.core.signing, its own salt) and carries the user's id
and a fingerprint of their password state: it expires after
REFSET_INVITATION_DAYS days (default 7) and is void as soon as a password is set,
so each link works once. Nothing is stored: a new link simply replaces the old one
only in the sense that both stay valid until a password is set or they expire.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.utils.translation import gettext

from annotation_server.errors import DomainError

SALT = "refset.accounts.invitation"


class InvitationError(DomainError):
    """The link is broken, expired or already used."""

    status = 404
    code = "invitation_invalid"


class InvitationExpired(InvitationError):
    status = 410
    code = "invitation_expired"


def lifetime() -> timedelta:
    # REFSET_INVITATION_DAYS: how long an invitation link stays valid (default 7 days).
    return timedelta(days=int(getattr(settings, "REFSET_INVITATION_DAYS", 7)))


def _fingerprint(user) -> str:
    state = f"{user.pk}:{user.password}:{user.last_login}:{user.is_active}"
    return hashlib.sha256(state.encode()).hexdigest()[:20]


def make_token(user) -> str:
    return signing.dumps({"u": user.pk, "f": _fingerprint(user)}, salt=SALT, compress=True)


def user_for_token(token: str):
    """The invited user, or InvitationExpired / InvitationError."""
    try:
        data = signing.loads(token, salt=SALT, max_age=lifetime())
    except signing.SignatureExpired:
        raise InvitationExpired(
            gettext("This invitation has expired. Ask your dataset manager for a new link.")
        ) from None
    except signing.BadSignature:
        raise InvitationError(gettext("This invitation link is not valid.")) from None
    user = get_user_model().objects.filter(pk=data.get("u"), is_active=True).first()
    if user is None or _fingerprint(user) != data.get("f"):
        raise InvitationError(
            gettext("This invitation has already been used or was withdrawn. Sign in instead.")
        )
    return user
