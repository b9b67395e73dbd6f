"""The blinding sweep: while a phase is blind, every endpoint looks the same to a
reader before and after the other reader drafts, saves, labels and submits; the
same for a blind arbitrator while the other arbitrator decides and signs.

Every GET route (from the resolver, as in the route sweep) is snapshotted as the
watching persona; per-request noise (CSRF tokens) is masked; nothing else may
differ."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.adjudication.services import save_decisions, sign
from annotation_server.reading import services as reading
from tests import factories
from tests.permissions.routes import build_scenario, concrete_routes

pytestmark = pytest.mark.django_db

_NOISE = [
    re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"'),
    re.compile(r'"csrfToken":\s*"[^"]+"'),
    re.compile(r'data-csrf="[^"]+"'),
    re.compile(r"refset-[0-9a-f]{32}"),  # a multipart boundary, new for every response
]


def _mask(text: str) -> str:
    for pattern in _NOISE:
        text = pattern.sub("<csrf>", text)
    return text


@pytest.fixture
def scenario(site, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return build_scenario(site)


def _client(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en", raise_request_exception=False)
    assert client.login(username=user.username, password=factories.PASSWORD)
    return client


def snapshot(client: Client, scenario) -> dict[str, str]:
    out = {}
    for route in concrete_routes(scenario):
        if route.name in ("logout", "worklist-next", "healthz"):  # healthz: latencies
            continue
        response = client.get(route.path)
        body = b"".join(response) if response.streaming else response.content
        out[route.path] = f"{response.status_code} {_mask(body.decode('utf-8', 'replace'))}"
    return out


def _differences(before: dict, after: dict) -> list[str]:
    import difflib

    out = []
    for path in before:
        if before[path] != after[path]:
            diff = difflib.unified_diff(
                before[path].splitlines(), after[path].splitlines(), lineterm="", n=0
            )
            out.append(path + "\n" + "\n".join(list(diff)[2:8]))
    return out


def test_a_blind_reader_sees_nothing_of_another_readers_work(scenario):
    watcher = _client(scenario.users["reader"])
    before = snapshot(watcher, scenario)
    control = _client(scenario.users["manager"])  # sees every read: the sweep can see
    control_before = snapshot(control, scenario)
    other, task = scenario.users["reader2"], scenario.tasks["reader2"]
    drawn = reading.save_finding(
        task,
        other,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=55.5, slice_index=2),
        attributes=factories.complete_nodule_attributes(),
    )
    reading.save_finding(
        task,
        other,
        finding=drawn,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=56.5, slice_index=2),
        attributes=factories.complete_nodule_attributes(malignancy=5),
        expected_version=drawn.version,
    )
    reading.save_case_label(
        task, other, {"nodules_present": True, "image_quality": 2}, expected_version=None
    )
    reading.record_active_time(task, other, 30)
    reading.submit(task, other, expected_version=None)
    after = snapshot(watcher, scenario)
    changed = _differences(before, after)
    assert not changed, "\n\n".join(changed)
    seen_by_manager = _differences(control_before, snapshot(control, scenario))
    assert any("/api/v1/findings/" in d for d in seen_by_manager), seen_by_manager


def test_a_blind_arbitrator_sees_nothing_of_the_other_arbitrators_decisions(scenario):
    disputed = scenario.disputed
    ArbitrationTask.objects.filter(pk=scenario.arbitration.pk).update(
        role=ArbitrationTask.Role.FIRST
    )
    second_person = factories.UserFactory(username="sweep_arbitrator_b")
    from annotation_server.accounts.models import Role
    from annotation_server.projects.services import grant_role

    grant_role(scenario.project, second_person, Role.ARBITRATOR)
    second = ArbitrationTask.objects.create(
        case=disputed, arbitrator=second_person, role=ArbitrationTask.Role.SECOND
    )
    watcher = _client(scenario.users["arbitrator"])
    before = snapshot(watcher, scenario)
    second = save_decisions(second, second_person, {}, expected_version=second.version)
    sign(second, second_person, factories.PASSWORD, expected_version=second.version)
    after = snapshot(watcher, scenario)
    changed = _differences(before, after)
    assert not changed, "\n\n".join(changed)
