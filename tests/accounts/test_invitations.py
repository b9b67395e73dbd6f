"""Invitation links (accounts.invitations): signed, expiring, one use; the page that
accepts them (projects:accept_invitation) is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from annotation_server.accounts import invitations
from annotation_server.audit.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def _later(monkeypatch, signing, *, days: float) -> None:
    """The signing module's clock, `days` ahead (only its clock: time.time elsewhere stays)."""
    import time
    from types import SimpleNamespace

    ahead = timedelta(days=days).total_seconds()
    monkeypatch.setattr(signing, "time", SimpleNamespace(time=lambda: time.time() + ahead))


@pytest.fixture
def invitee(db, site):
    user = factories.UserFactory(username="invitee", profile__site=site)
    user.set_unusable_password()
    user.save()
    return user


def test_a_fresh_token_names_its_user(invitee):
    assert invitations.user_for_token(invitations.make_token(invitee)) == invitee


def test_an_expired_token_is_refused_with_410(invitee, settings, monkeypatch):
    token = invitations.make_token(invitee)
    settings.REFSET_INVITATION_DAYS = 2
    import django.core.signing as signing

    _later(monkeypatch, signing, days=3)
    with pytest.raises(invitations.InvitationExpired):
        invitations.user_for_token(token)
    response = Client().get(reverse("projects:accept_invitation", args=[token]))
    assert response.status_code == 410
    assert "expired" in response.content.decode()


def test_a_token_still_valid_just_before_expiry(invitee, settings, monkeypatch):
    token = invitations.make_token(invitee)
    settings.REFSET_INVITATION_DAYS = 2
    import django.core.signing as signing

    _later(monkeypatch, signing, days=1.9)
    assert invitations.user_for_token(token) == invitee


def test_a_tampered_token_is_refused(invitee):
    token = invitations.make_token(invitee)
    with pytest.raises(invitations.InvitationError):
        invitations.user_for_token(token[:-2] + ("aa" if not token.endswith("aa") else "bb"))
    assert Client().get(reverse("projects:accept_invitation", args=["nonsense"])).status_code == 404


def test_a_token_works_once(invitee):
    token = invitations.make_token(invitee)
    url = reverse("projects:accept_invitation", args=[token])
    client = Client()
    response = client.post(
        url, {"new_password1": "Reading-room-42!", "new_password2": "Reading-room-42!"}
    )
    assert response.status_code == 302
    assert (
        AuditEvent.objects.filter(action="account.invitation_accepted", actor=invitee).count() == 1
    )
    with pytest.raises(invitations.InvitationError):
        invitations.user_for_token(token)
    again = client.post(url, {"new_password1": "Other-pass-43!", "new_password2": "Other-pass-43!"})
    assert again.status_code == 404
    assert Client().login(username="invitee", password="Reading-room-42!")


def test_mismatched_passwords_keep_the_link_usable(invitee):
    token = invitations.make_token(invitee)
    url = reverse("projects:accept_invitation", args=[token])
    response = Client().post(url, {"new_password1": "Reading-room-42!", "new_password2": "nope"})
    assert response.status_code == 400
    assert invitations.user_for_token(token) == invitee


def test_a_deactivated_account_cannot_use_its_link(invitee):
    token = invitations.make_token(invitee)
    invitee.is_active = False
    invitee.save()
    with pytest.raises(invitations.InvitationError):
        invitations.user_for_token(token)
