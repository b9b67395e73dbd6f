"""Shared fixtures: personas (reader_a, reader_b, reader_c, arbitrator, manager,
outsider), a lung-CT project in reading with three blind reads per case, and
API clients logged in as each persona."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from django.core.signals import request_finished, request_started
from django.db import connection
from rest_framework.test import APIClient

from annotation_server.accounts.models import Role
from annotation_server.projects.services import grant_role
from tests import factories

ARTIFACTS = Path(
    os.environ.get("REFSET_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """`xdist_group` under `--dist loadgroup` (make test): pytest-xdist 3.8 tags
    each grouped test by assigning `item._nodeid`, which pytest 9.2 no longer
    reads (a node id is `item._id` now), so the groups were silently spread over
    every xdist worker. Tag them the way this pytest reads; a no-op where xdist's
    own tag took."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = sorted(
            {
                str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                for m in item.iter_markers("xdist_group")
            }
        )
        if names and "@" not in item.nodeid.rpartition("]")[2]:
            node_id = dataclasses.replace(item._id)
            object.__setattr__(node_id, "_str_cache", f"{item.nodeid}@{'_'.join(names)}")
            item._id = node_id


@pytest.fixture(autouse=True)
def _content_types_and_permissions(request):
    """Transactional tests end with a flush that skips post_migrate, so the next
    test on this worker may find no content types or permissions (guardian needs
    both). Re-emit post_migrate when they are missing, with a fresh cache."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.core.management.sql import emit_post_migrate_signal

    ContentType.objects.clear_cache()
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(request.fixturenames)
    )
    if uses_db:
        request.getfixturevalue("_django_db_helper")
        ContentType.objects.clear_cache()
        if not Permission.objects.filter(codename="manage_project").exists():
            emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
            ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()


@pytest.fixture(autouse=True)
def _english_outside_requests():
    """Code that runs outside a request (services, jobs in-process, commands)
    speaks the default UI language, zh-Hans; tests read their messages in
    English unless they choose a language (requests choose theirs by
    Accept-Language, whatever this says)."""
    from django.core.signals import request_finished
    from django.utils import translation

    def back_to_english(**kwargs):
        # A request activates its own language on this thread and leaves it there.
        translation.activate("en")

    request_finished.connect(back_to_english, dispatch_uid="tests-english-outside-requests")
    try:
        with translation.override("en"):
            yield
    finally:
        request_finished.disconnect(dispatch_uid="tests-english-outside-requests")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def site(db):
    return factories.SiteFactory(code="S01", name="示例大学附属医院")


def _person(username: str, site, **profile):
    return factories.UserFactory(
        username=username, profile__site=site, **{f"profile__{k}": v for k, v in profile.items()}
    )


@pytest.fixture
def reader_a(db, site):
    return _person("reader_a", site, title="attending", years_experience=8)


@pytest.fixture
def reader_b(db, site):
    return _person("reader_b", site, title="associate_chief", years_experience=15)


@pytest.fixture
def reader_c(db, site):
    return _person("reader_c", site, title="resident", years_experience=3)


@pytest.fixture
def arbitrator(db, site):
    return _person("arbitrator", site, title="chief", years_experience=25)


@pytest.fixture
def manager(db, site):
    return _person("manager", site)


@pytest.fixture
def outsider(db, site):
    return _person("outsider", site)


@pytest.fixture
def project(db, reader_a, reader_b, reader_c, arbitrator, manager):
    project = factories.ProjectFactory(slug="lung", name="Lung nodule CT")
    for reader in (reader_a, reader_b, reader_c):
        grant_role(project, reader, Role.READER)
    grant_role(project, arbitrator, Role.ARBITRATOR)
    grant_role(project, manager, Role.MANAGER)
    return project


@pytest.fixture
def case(project):
    return factories.CaseFactory(project=project, code="C0001")


@pytest.fixture
def tasks(case, reader_a, reader_b, reader_c):
    """Three blind phase-1 reads of `case`, keyed by persona name."""
    return {
        name: factories.TaskFactory(case=case, reader=reader)
        for name, reader in (("reader_a", reader_a), ("reader_b", reader_b), ("reader_c", reader_c))
    }


@pytest.fixture
def client_for():
    """API clients signed in as a browser is: Django's login (a session cookie,
    so an inactive or deleted account is anonymous again, as in a browser) and
    CSRF enforced, with the token passed as the pages' JavaScript passes it (the
    csrftoken cookie echoed in X-CSRFToken, static/refset/common/http.js)."""
    from django.conf import settings
    from django.middleware.csrf import CSRF_ALLOWED_CHARS, CSRF_SECRET_LENGTH
    from django.utils.crypto import get_random_string

    def make(user) -> APIClient:
        client = APIClient(enforce_csrf_checks=True)
        # The backend a password sign-in ends with (the lockout backend only refuses).
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        token = get_random_string(CSRF_SECRET_LENGTH, allowed_chars=CSRF_ALLOWED_CHARS)
        client.cookies[settings.CSRF_COOKIE_NAME] = token
        client.defaults[settings.CSRF_HEADER_NAME] = token
        return client

    return make


@pytest.fixture
def celery_worker(request, transactional_db, settings):
    """A real worker process on this test's database and its own Redis queue."""
    marker = request.node.get_closest_marker("django_db")
    assert marker and marker.kwargs.get("serialized_rollback"), (
        "mark the test django_db(transaction=True, serialized_rollback=True): its flush "
        "would otherwise drop the rows migrations ship (schemas) for the tests after it"
    )
    assert settings.CELERY_BROKER_URL.startswith("redis://"), "make test provides Redis"
    db = connection.settings_dict
    url = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    queue = f"refset-test-{uuid.uuid4().hex[:8]}"
    from annotation_server.celery import app

    app.conf.task_default_queue = queue
    env = dict(
        os.environ,
        DATABASE_URL=url,
        REFSET_CELERY_QUEUE=queue,
        REFSET_MEDIA_ROOT=str(settings.MEDIA_ROOT),
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "annotation_server",
            "worker",
            "-Q",
            queue,
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "WARNING",
        ],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
    )
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
    app.conf.task_default_queue = "celery"


# ------------------------------------------------------------------ browser
@pytest.fixture(autouse=True)
def _csp_lets_playwright_wait(request):
    """Playwright's wait_for_function evaluates its predicate with eval() in the
    page, which the Content-Security-Policy refuses: tests with a live server allow
    'unsafe-eval' in script-src (no RefSet script uses eval; inline script stays
    refused, and tests/browser fails on any violation)."""
    if "live_server" in request.fixturenames:
        settings = request.getfixturevalue("settings")
        policy = dict(settings.CONTENT_SECURITY_POLICY)
        policy["script-src"] = [*policy["script-src"], "'unsafe-eval'"]
        settings.CONTENT_SECURITY_POLICY = policy
    yield


# Headless Chromium (Debian's /usr/bin/chromium) driven by Playwright. Here, not in
# tests/browser/, because the end-to-end tests elsewhere drive the browser too, and
# Playwright's sync API allows one instance per process (per xdist worker).


@pytest.fixture(scope="session")
def browser():
    from tests.chromium import CHROMIUM, launch

    assert os.path.exists(CHROMIUM), "Chromium missing: make test installs Debian's chromium"
    assert os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE"), "run through make test (tests.harness)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)
        with _screenshots_retried():
            yield browser
        browser.close()


# Headless Chromium now and then refuses a capture under load ("Protocol error
# (Page.captureScreenshot): Unable to capture screenshot", a compositor frame not
# ready; one CI failure in ~2,600 tests). A screenshot is evidence for a person, not
# an assertion: it is taken again after the next frames, and a third refusal fails.
_CAPTURE_REFUSED = "Unable to capture screenshot"


@contextlib.contextmanager
def _screenshots_retried(tries: int = 3, page_class=None):
    from playwright.sync_api import Error, Page

    cls = page_class or Page
    original = cls.screenshot

    def screenshot(self, *args, **kwargs):
        for attempt in range(1, tries + 1):
            try:
                return original(self, *args, **kwargs)
            except Error as exc:
                if _CAPTURE_REFUSED not in str(exc) or attempt == tries:
                    raise
                self.wait_for_timeout(250 * attempt)

    cls.screenshot = screenshot
    try:
        yield
    finally:
        cls.screenshot = original


class _InFlight:
    """Requests the live server is still answering. A closed page can leave one
    behind (a workstation heartbeat); the test database's flush must wait for it,
    or its TRUNCATE and the request's reads deadlock, the flush fails and the next
    test starts on the last one's rows."""

    def __init__(self):
        self.count = 0
        self.cond = threading.Condition()

    def started(self, **kwargs):
        if threading.current_thread() is threading.main_thread():
            return  # the test client, in the test's own thread
        with self.cond:
            self.count += 1

    def finished(self, **kwargs):
        if threading.current_thread() is threading.main_thread():
            return
        with self.cond:
            self.count = max(0, self.count - 1)
            self.cond.notify_all()

    def wait_idle(self, timeout: float = 15.0) -> None:
        with self.cond:
            self.cond.wait_for(lambda: self.count == 0, timeout=timeout)


_in_flight = _InFlight()
request_started.connect(_in_flight.started, dispatch_uid="tests-in-flight-started")
request_finished.connect(_in_flight.finished, dispatch_uid="tests-in-flight-finished")


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()
    # a request the server accepted just before the close may not have started yet
    time.sleep(0.05)
    _in_flight.wait_idle()


@pytest.fixture
def session_client_for():
    """API clients signed in through a real session (as a browser is), for the
    endpoints a browser reaches; `client_for` skips authentication altogether."""

    def make(user) -> APIClient:
        client = APIClient()
        assert client.login(username=user.username, password=factories.PASSWORD)
        return client

    return make


# ------------------------------------------------------------------ S3 storage
@pytest.fixture(scope="session")
def seaweed(tmp_path_factory):
    """A real S3 server (SeaweedFS, tests/seaweed.py) on loopback for this test
    session (one per xdist worker), started on first use, stopped at the end of
    the session (also when it fails)."""
    from tests.seaweed import run_seaweed

    with run_seaweed(tmp_path_factory.mktemp("seaweed")) as handle:
        yield handle


@pytest.fixture
def s3_storage(seaweed, settings, tmp_path):
    """This test's default storage is S3 on the SeaweedFS server, through
    django-storages (REFSET_STORAGE_BACKEND=s3), with its keys under a prefix of
    its own in the bucket and its own local cache folder. Yields the server handle
    with `prefix` and `cache_dir` set; `keys()` lists this test's objects."""
    from django.core.files.storage import default_storage, storages
    from django.utils.functional import empty

    handle = dataclasses.replace(
        seaweed, prefix=f"t-{uuid.uuid4().hex[:12]}", cache_dir=tmp_path / "storage-cache"
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": handle.storage_options(),
        },
    }
    settings.REFSET_STORAGE_CACHE_DIR = handle.cache_dir
    # override_settings resets these on STORAGES changes; again here, so that no
    # storage object made before the switch survives it.
    storages.__dict__.pop("backends", None)  # a cached_property
    storages._backends = None
    storages._storages = {}
    default_storage._wrapped = empty
    yield handle
    storages._storages = {}
    default_storage._wrapped = empty
