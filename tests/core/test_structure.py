"""The project-level registries resolve, and domain errors take one path to the
API and to pages."""

from __future__ import annotations

import inspect

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory
from django.utils import translation

from annotation_server import registry
from annotation_server.errors import DomainError, DomainErrorMiddleware, api_exception_handler
from annotation_server.jobs import hooks
from annotation_server.jobs import services as jobs
from annotation_server.projects.schema import SchemaError
from annotation_server.projects.services import TransitionError
from annotation_server.reading.services import ReadLockedError, VersionConflict


def test_every_registered_job_kind_names_a_function_in_its_apps_jobs_module():
    handlers = jobs._handlers()
    assert sorted(handlers) == sorted(registry.JOB_HANDLERS) == jobs.job_kinds()
    for kind, function in handlers.items():
        assert callable(function), kind
        assert function.__module__.endswith(".jobs"), (kind, function.__module__)
        assert list(inspect.signature(function).parameters) == ["ctx"], kind


def test_every_hook_resolves_to_a_callable():
    for name in registry.HOOKS:
        functions = hooks._functions(name)
        assert functions and all(callable(f) for f in functions), name


def test_an_unknown_hook_is_refused_by_name():
    with pytest.raises(ValueError, match="Unknown hook 'nope'"):
        hooks.run("nope")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (VersionConflict("stale", 7), 409, "version_conflict"),
        (ReadLockedError("locked"), 409, "read_locked"),
        (TransitionError("no"), 409, "invalid_transition"),
        (SchemaError(["bad field"]), 400, "schema"),
    ],
)
def test_domain_errors_answer_the_api_with_their_status_and_stable_code(error, status, code):
    response = api_exception_handler(error, {})
    assert response.status_code == status
    assert response.data["code"] == code
    assert response.data["detail"]


def test_a_version_conflict_carries_the_current_version():
    response = api_exception_handler(VersionConflict("stale", 7), {})
    assert response.data == {"detail": "stale", "code": "version_conflict", "current_version": 7}


def test_a_schema_error_lists_every_problem():
    response = api_exception_handler(SchemaError(["a: missing", "b: too big"]), {})
    assert response.data["errors"] == ["a: missing", "b: too big"]


@pytest.mark.django_db
def test_a_page_shows_a_domain_error_in_the_site_layout_in_the_users_language():
    class Closed(DomainError):
        code = "closed"

    request = RequestFactory().get("/somewhere/")
    request.user = AnonymousUser()
    middleware = DomainErrorMiddleware(lambda r: None)
    with translation.override("en"):
        response = middleware.process_exception(request, Closed("The case is closed."))
    assert response.status_code == 409
    body = response.content.decode()
    assert "The case is closed." in body and 'data-code="closed"' in body
    assert middleware.process_exception(request, ValueError("not ours")) is None
