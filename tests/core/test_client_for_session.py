"""The `client_for` fixture (tests/conftest.py) signs in as a browser does: a
session cookie, and CSRF checked on every write, with the token passed as the
pages' JavaScript passes it. Tests that use it exercise what a browser reaches,
not an authentication shortcut."""

from __future__ import annotations

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db


def test_client_for_is_a_session_login(client_for, manager):
    client = client_for(manager)
    assert client.session["_auth_user_id"] == str(manager.pk)
    me = client.get("/api/v1/me/")
    assert me.status_code == 200
    assert [row["username"] for row in me.json()["results"]] == ["manager"], me.json()


def test_a_write_without_the_csrf_token_is_refused(client_for, manager):
    client = client_for(manager)
    # With the token the request reaches the view (which takes no POST).
    assert client.post("/api/v1/me/", {}, format="json").status_code == 405
    del client.defaults[settings.CSRF_HEADER_NAME]
    refused = client.post("/api/v1/me/", {}, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"], refused.json()


def test_a_deactivated_account_is_signed_out(client_for, manager):
    client = client_for(manager)
    assert client.get("/api/v1/me/").status_code == 200
    manager.is_active = False
    manager.save(update_fields=["is_active"])
    assert client.get("/api/v1/me/").status_code in (401, 403)
