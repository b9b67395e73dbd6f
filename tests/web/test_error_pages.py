"""Errors answer with the site's own pages, in the user's language, never with
Django's technical pages (DEBUG is off in tests, as in production and the demo)."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

TECHNICAL = ("Traceback", "Page not found at", "URLconf", "Request Method", "RuntimeError")


def _assert_friendly(page: str) -> None:
    assert 'class="topbar"' in page or "refset/app.css" in page  # the site's layout
    for text in TECHNICAL:
        assert text not in page, text


@pytest.mark.parametrize("language,title", [("en", "Page not found"), ("zh-hans", "页面不存在")])
def test_missing_page_answers_friendly_404_in_chosen_language(settings, reader_a, language, title):
    assert settings.DEBUG is False
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(reader_a)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert title in page and 'data-testid="error-404"' in page
    assert 'class="topbar"' in page and "reader_a" in page  # the usual header, logged in
    _assert_friendly(page)


def test_missing_page_for_anonymous_user_is_friendly_too():
    response = Client(HTTP_ACCEPT_LANGUAGE="en").get("/static/refset/no-such-module.js")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page
    _assert_friendly(page)


@pytest.mark.parametrize("language,title", [("en", "Access denied"), ("zh-hans", "无权访问")])
def test_reader_opening_a_manager_page_sees_friendly_403(project, reader_a, language, title):
    client = Client(HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(reader_a)
    response = client.get(f"/projects/{project.slug}/assignments/")
    assert response.status_code == 403
    page = response.content.decode()
    assert title in page and 'data-testid="error-403"' in page
    _assert_friendly(page)


@pytest.mark.urls("tests.web.error_urls")
@pytest.mark.parametrize(
    "language,title", [("en", "Something went wrong"), ("zh-hans", "服务器出错了")]
)
def test_view_that_raises_shows_friendly_500(reader_a, language, title):
    client = Client(raise_request_exception=False, HTTP_ACCEPT_LANGUAGE=language)
    client.force_login(reader_a)
    response = client.get("/test-only/broken/")
    assert response.status_code == 500
    page = response.content.decode()
    assert title in page and 'data-testid="error-500"' in page
    assert "secret internal detail" not in page and "postgresql://" not in page
    _assert_friendly(page)


@pytest.mark.parametrize(
    "language,title", [("en", "The form has expired"), ("zh-hans", "表单已失效")]
)
def test_form_without_csrf_token_shows_friendly_403(reader_a, language, title):
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE=language)
    response = client.post("/login/", {"username": "reader_a", "password": "x"})
    assert response.status_code == 403
    page = response.content.decode()
    assert title in page and 'data-testid="error-403-csrf"' in page
    assert "DEBUG" not in page and "CSRF_FAILURE_VIEW" not in page
    _assert_friendly(page)


@pytest.mark.urls("tests.web.error_urls")
def test_an_api_client_gets_a_json_500_without_the_failure(reader_a):
    client = Client(raise_request_exception=False, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(reader_a)
    response = client.get("/api/v1/test-only/broken/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "server_error" and "logged" in body["detail"]
    assert "secret internal detail" not in response.content.decode()
