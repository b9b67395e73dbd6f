"""Wrong passwords lock the account: on the sign-in form, on HTTP Basic (API and
DICOMweb) and, counted together, on the signature (tests/adjudication); the
lockout speaks the user's language; an administrator unlocks it, audited."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from annotation_server.audit.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

LIMIT = 3
LOCKED_ZH = "密码错误次数过多"
LOCKED_EN = "Too many wrong passwords"


@pytest.fixture(autouse=True)
def _lockout(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def sign_in(client: Client, user, password: str, **headers):
    return client.post("/login/", {"username": user.username, "password": password}, **headers)


def basic(user, password: str) -> dict:
    token = base64.b64encode(f"{user.username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_wrong_passwords_on_the_sign_in_form_lock_the_account_with_a_clear_message(reader_a):
    client = Client()
    for _ in range(LIMIT - 1):
        wrong = sign_in(client, reader_a, "not-the-password")
        assert wrong.status_code == 200 and LOCKED_ZH not in wrong.content.decode()
    locked = sign_in(client, reader_a, "not-the-password")
    page = locked.content.decode()
    assert locked.status_code == 429
    assert LOCKED_ZH in page and 'name="username"' in page  # the sign-in page, in Chinese
    # Now even the right password is refused, and no session is opened.
    right = sign_in(client, reader_a, factories.PASSWORD)
    assert right.status_code == 429 and LOCKED_ZH in right.content.decode()
    assert not signed_in(client)
    english = sign_in(Client(), reader_a, factories.PASSWORD, HTTP_ACCEPT_LANGUAGE="en")
    assert english.status_code == 429
    assert f"{LOCKED_EN}: this account is locked for 15 minutes" in english.content.decode()


def test_other_accounts_and_successful_sign_ins_are_not_locked(reader_a, reader_b):
    client = Client()
    for _ in range(LIMIT - 1):
        sign_in(client, reader_a, "not-the-password")
    assert sign_in(client, reader_a, factories.PASSWORD).status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):  # a successful sign-in forgot the earlier failures
        assert sign_in(client, reader_a, "not-the-password").status_code == 200
    for _ in range(LIMIT):
        sign_in(client, reader_b, "not-the-password")
    other = Client()
    assert sign_in(other, reader_a, factories.PASSWORD).status_code == 302
    assert signed_in(other)


def test_http_basic_failures_lock_the_account_on_the_api_and_dicomweb(reader_a, project):
    client = Client()
    assert client.get("/api/v1/projects/", **basic(reader_a, factories.PASSWORD)).status_code == 200
    for _ in range(LIMIT - 1):
        wrong = client.get("/api/v1/projects/", **basic(reader_a, "not-the-password"))
        assert wrong.status_code in (401, 403)
    locked = client.get("/api/v1/projects/", **basic(reader_a, "not-the-password"))
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"
    assert LOCKED_ZH in locked.json()["detail"]
    for url in ("/api/v1/projects/", "/dicomweb/studies"):
        right = client.get(url, **basic(reader_a, factories.PASSWORD), HTTP_ACCEPT_LANGUAGE="en")
        assert right.status_code == 429, url
        assert right.json()["code"] == "account_locked"
        assert right.json()["detail"].startswith(LOCKED_EN)
    # Basic and the sign-in form count for the same account.
    assert sign_in(Client(), reader_a, factories.PASSWORD).status_code == 429


def test_dicomweb_basic_failures_count_too(reader_a, project):
    client = Client()
    for _ in range(LIMIT):
        client.get("/dicomweb/studies", **basic(reader_a, "not-the-password"))
    assert sign_in(Client(), reader_a, factories.PASSWORD).status_code == 429


def lock(user) -> None:
    client = Client()
    for _ in range(LIMIT):
        sign_in(client, user, "not-the-password")
    assert sign_in(client, user, factories.PASSWORD).status_code == 429


def test_an_administrator_unlocks_an_account_and_it_is_audited(reader_a):
    admin = factories.UserFactory(username="admin", is_staff=True, is_superuser=True)
    lock(reader_a)
    call_command("unlock_account", "reader_a", by="admin", reason="called the helpdesk")
    client = Client()
    assert sign_in(client, reader_a, factories.PASSWORD).status_code == 302
    event = AuditEvent.objects.get(action="accounts.unlocked")
    assert event.actor_id == admin.pk
    assert event.object_type == "auth.user" and event.object_id == str(reader_a.pk)
    assert event.data["reason"] == "called the helpdesk"
    assert event.data["username"] == "reader_a" and event.data["was_locked"] is True


def test_unlocking_needs_a_reason_and_an_administrator(reader_a, reader_b):
    factories.UserFactory(username="admin", is_staff=True)
    lock(reader_a)
    with pytest.raises(CommandError):
        call_command("unlock_account", "reader_a", by="admin", reason="  ")
    with pytest.raises(CommandError):
        call_command("unlock_account", "reader_a", by="reader_b", reason="asked nicely")
    assert sign_in(Client(), reader_a, factories.PASSWORD).status_code == 429
    assert not AuditEvent.objects.filter(action="accounts.unlocked").exists()


def test_the_admin_lists_failure_records_but_cannot_delete_them(reader_a):
    admin = get_user_model().objects.create_superuser("admin", "a@example.org", "x-9-long-pass")
    lock(reader_a)
    client = Client()
    client.force_login(admin)
    listing = client.get("/admin/axes/accessattempt/", HTTP_ACCEPT_LANGUAGE="en")
    assert listing.status_code == 200 and "reader_a" in listing.content.decode()
    assert 'value="delete_selected"' not in listing.content.decode()
