"""API fuzz (a security gate in `make test`): schemathesis generates requests from
the OpenAPI schema (/api/schema/) and sends them to a live server on loopback,
signed in as a dataset manager and as a reader of a seeded project (the route
sweep's scenario: a case in reading with reads and a finding, real images, a
case in arbitration, a qualification test, a job).

Checks on every response:
- no 5xx (schemathesis' `not_a_server_error`);
- every 4xx says why: a JSON body with a non-empty `detail` or field errors
  (`says_why`). A path no route matches is Django's 404 page, not the API's, and
  is let through.

Per operation, four strategies share the examples: valid and invalid (negative)
data, each with the scenario's real path parameters (so bodies and query strings
reach real objects) and with generated ones. Then fixed probes that fuzzers find
first: a 40-digit integer, NUL, and bytes that are not UTF-8 in every path and
query parameter.

Bounded for `make test` (about a minute per persona on two cores):
    REFSET_FUZZ_EXAMPLES   examples per operation and strategy mix (default 6)
    REFSET_FUZZ_SECONDS    time budget per persona (default 60)
    REFSET_FUZZ_SEED       Hypothesis seed (default 20240601: the same requests
                           every run; set another, or "random", to explore)
A fuller run (see README, "API fuzz"):
    REFSET_FUZZ_EXAMPLES=100 REFSET_FUZZ_SECONDS=1500 REFSET_FUZZ_SEED=random \
        python -m tests.harness tests/fuzz -p no:cacheprovider -s

Figures (operations, requests, failures) are printed and written to
test-artifacts/fuzz-<persona>.json.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import Resolver404, resolve
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup

from tests.permissions.routes import build_scenario

EXAMPLES = int(os.environ.get("REFSET_FUZZ_EXAMPLES", "6"))
BUDGET_S = float(os.environ.get("REFSET_FUZZ_SECONDS", "60"))
_SEED = os.environ.get("REFSET_FUZZ_SEED", "20240601")
SEED = random.randrange(2**32) if _SEED == "random" else int(_SEED)

# Values that once reached the database or a parser unchecked somewhere.
PROBES = ("9" * 40, "%00", "%FF%FE")

pytestmark = [
    # live_server serves the test database from another thread: transactional,
    # and serialized_rollback keeps the rows migrations ship for later tests.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    # the budget, plus the scenario and the server around it
    pytest.mark.timeout(int(BUDGET_S * 1.5) + 240),
]


class _OutOfTime(Exception):
    pass


@schemathesis.check
def says_why(ctx, response, case):
    """A 4xx carries a JSON body with a non-empty `detail` or field errors."""
    if not 400 <= response.status_code < 500:
        return None
    if response.status_code == 404 and not _routed(response.request.url):
        return None  # no route: Django's 404 page, the API never saw it
    try:
        body = json.loads(response.content or b"")
    except ValueError:
        raise AssertionError(
            f"{response.status_code} without a JSON body "
            f"({response.headers.get('content-type', ['?'])[0]}): {response.content[:200]!r}"
        ) from None
    if not _explains(body):
        raise AssertionError(f"{response.status_code} without a message: {body!r}"[:300])
    return None


def _explains(body) -> bool:
    if not isinstance(body, dict) or not body:
        return False
    if "detail" in body:
        return _non_empty(body["detail"])
    return all(_non_empty(v) for k, v in body.items() if k != "code")


def _non_empty(value) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list):
        return bool(value) and all(_non_empty(v) for v in value)
    if isinstance(value, dict):
        return bool(value) and all(_non_empty(v) for v in value.values())
    return False


def _routed(url: str) -> bool:
    try:
        resolve(unquote(urlsplit(url).path))
    except Resolver404:
        return False
    except Exception:  # noqa: BLE001 - a path the resolver cannot even read
        return False
    return True


# -- the scenario's real path parameters --------------------------------------------


def _known_parameters(scenario, persona: str) -> dict[str, dict[str, str]]:
    """{first segment after /api/v1/ (or "dicomweb"): {path parameter: value}}."""
    s = scenario
    ids = {
        "adjudication": s.disputed.pk,
        "arbitration-tasks": s.arbitration.pk,
        "cases": s.case.pk,
        "clusters": 999_999,
        "findings": s.finding.pk,
        "instances": s.instance.pk,
        "jobs": s.job.pk,
        "qualification-attempts": s.attempt.pk,
        "qualification-tests": s.qualification.pk,
        "reading-tasks": s.tasks["reader"].pk,
        "reference-findings": 999_999,
        "series": s.series.pk,
        "sites": s.users[persona].profile.site_id,
        "studies": s.series.study_id,
    }
    common = {
        "slug": s.project.slug,
        "study": s.study_uid,
        "series": s.series_uid,
        "instance": s.sop_uid,
        "frames": "1",
    }
    out = {prefix: {**common, "id": str(pk)} for prefix, pk in ids.items()}
    out["projects"] = common
    out["dicomweb"] = common
    return out


def _known_for(operation, known) -> dict[str, str]:
    parts = [p for p in operation.path.split("/") if p]
    prefix = parts[2] if parts[:2] == ["api", "v1"] and len(parts) > 2 else parts[0]
    names = {p.name for p in operation.path_parameters}
    values = known.get(prefix, {})
    return {name: values[name] for name in names if name in values}


# -- the run ------------------------------------------------------------------------


@dataclass
class Report:
    persona: str
    operations: int = 0
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    failures: dict[str, dict] = field(default_factory=dict)
    skipped_for_time: list[str] = field(default_factory=list)
    seconds: float = 0.0
    http_seconds: float = 0.0
    probed: set = field(default_factory=set)

    def record(self, label: str, response, error: Exception | None, curl: str) -> None:
        self.requests += 1
        key = f"{response.status_code // 100}xx"
        self.statuses[key] = self.statuses.get(key, 0) + 1
        if error is None:
            return
        name = f"{label} -> {response.status_code}"
        if name not in self.failures:
            self.failures[name] = {
                "error": _describe(error)[:600],
                "body": response.content[:300].decode("utf-8", "replace"),
                "reproduce": curl,
            }


def _describe(error: BaseException) -> str:
    parts = getattr(error, "exceptions", None) or [error]
    return "; ".join(
        " ".join(str(x) for x in (getattr(e, "title", ""), getattr(e, "message", "") or e) if x)
        for e in parts
    ).strip()


def _session(live_server, user) -> requests.Session:
    """A browser-like signed-in session: session cookie plus the CSRF token."""
    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", client.cookies["sessionid"].value)
    session.get(f"{live_server.url}/login/", timeout=30)  # sets csrftoken
    session.headers["X-CSRFToken"] = session.cookies.get("csrftoken", "")
    session.headers["Referer"] = f"{live_server.url}/"
    return session


def _check(case, response, report: Report, base_url: str) -> None:
    error = None
    try:
        case.validate_response(response, checks=[not_a_server_error, says_why])
    except (AssertionError, FailureGroup) as exc:  # a check failed
        error = exc
    curl = ""
    if error is not None:
        try:
            curl = case.as_curl_command()
        except Exception:  # noqa: BLE001
            curl = f"{case.method} {case.formatted_path}"
    report.record(case.operation.label, response, error, curl)


def _as_persona(case) -> None:
    """Drop the credentials schemathesis generates from the security schemes (HTTP
    Basic, the session cookie): the request goes as the persona's session."""
    for name in [h for h in case.headers or {} if h.lower() == "authorization"]:
        del case.headers[name]
    if case.cookies:
        case.cookies.pop("sessionid", None)


def _fuzz_operation(operation, known, session, base_url, report, deadline) -> None:
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if known:
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=known) for mode in modes
        ]

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES * len(strategies),
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(case=st.one_of(strategies))
    def run(case):
        if time.monotonic() > deadline:
            raise _OutOfTime
        _as_persona(case)
        started = time.monotonic()
        response = case.call(base_url=base_url, session=session, timeout=30)
        report.http_seconds += time.monotonic() - started
        _check(case, response, report, base_url)

    try:
        run()
    except _OutOfTime:
        report.skipped_for_time.append(operation.label)
    except Exception as exc:  # noqa: BLE001 - generation itself failed: report it
        report.failures.setdefault(
            f"{operation.label} (generation)", {"error": repr(exc)[:600], "body": ""}
        )


def _probe_operation(operation, known, session, base_url, report, deadline) -> None:
    """The classic finds, sent as is: every path and query parameter in turn (once
    per view: DICOMweb's per-project routes repeat the global ones)."""
    path_names = [p.name for p in operation.path_parameters]
    query_names = [p.name for p in operation.query]
    base = {name: known.get(name, "1") for name in path_names}
    targets = [("path", n) for n in path_names] + [("query", n) for n in query_names]
    view = operation.method + operation.path.replace("/projects/{slug}", "")
    for where, name in targets:
        if (view, name) in report.probed and name != "slug":
            continue
        report.probed.add((view, name))
        for value in PROBES:
            if time.monotonic() > deadline:
                return
            values = dict(base)
            query = ""
            if where == "path":
                values[name] = value
            else:
                query = f"?{name}={value}"
            path = operation.path
            for key, v in values.items():
                path = path.replace("{" + key + "}", str(v))
            url = f"{base_url}{path}{query}"
            started = time.monotonic()
            response = session.request(operation.method.upper(), url, timeout=30)
            report.http_seconds += time.monotonic() - started
            case = operation.Case(path_parameters=values)
            error = None
            try:
                case.validate_response(response, checks=[not_a_server_error, says_why])
            except (AssertionError, FailureGroup) as exc:
                error = exc
            report.record(operation.label, response, error, f"curl -X {operation.method} {url}")


def _fuzz(live_server, user, persona, scenario, artifacts_dir) -> Report:
    started = time.monotonic()
    session = _session(live_server, user)
    raw = session.get(f"{live_server.url}/api/schema/?format=json", timeout=60)
    assert raw.status_code == 200, raw.content[:300]
    schema = schemathesis.openapi.from_dict(raw.json())
    known = _known_parameters(scenario, persona)
    operations = [result.ok() for result in schema.get_all_operations()]
    report = Report(persona=persona, operations=len(operations))
    per_operation = BUDGET_S / max(len(operations), 1)
    for index, operation in enumerate(operations):
        # Each operation gets its share of what is left, so none is starved.
        left = BUDGET_S - (time.monotonic() - started)
        share = max(per_operation, left / (len(operations) - index)) if left > 0 else 0
        deadline = time.monotonic() + share
        values = _known_for(operation, known)
        _probe_operation(operation, values, session, live_server.url, report, deadline)
        _fuzz_operation(operation, values, session, live_server.url, report, deadline)
    report.seconds = round(time.monotonic() - started, 1)
    summary = {
        "persona": persona,
        "operations": report.operations,
        "requests": report.requests,
        "statuses": report.statuses,
        "failures": len(report.failures),
        "operations_cut_short": len(report.skipped_for_time),
        "seconds": report.seconds,
        "http_seconds": round(report.http_seconds, 1),
        "examples": EXAMPLES,
        "budget_s": BUDGET_S,
        "seed": SEED,
    }
    (artifacts_dir / f"fuzz-{persona}.json").write_text(
        json.dumps({**summary, "details": report.failures}, indent=2, ensure_ascii=False)
    )
    print(f"\n[api fuzz] {json.dumps(summary)}")
    return report


def _assert_clean(report: Report) -> None:
    assert not report.failures, f"API fuzz as {report.persona}: {len(report.failures)} " + (
        "failing operation(s):\n\n"
        + "\n\n".join(
            f"{name}\n  {d['error']}\n  body: {d['body']}\n  {d.get('reproduce', '')}"
            for name, d in report.failures.items()
        )
    )


@pytest.fixture
def scenario(site):
    scenario = build_scenario(site)
    # the manager may also read original identifiers: the reveal endpoint is fuzzed too
    scenario.users["manager"].user_permissions.add(
        Permission.objects.get(codename="view_identity_key")
    )
    return scenario


def test_api_fuzz_as_manager(live_server, scenario, artifacts_dir):
    report = _fuzz(live_server, scenario.users["manager"], "manager", scenario, artifacts_dir)
    _assert_clean(report)


def test_api_fuzz_as_reader(live_server, scenario, artifacts_dir):
    report = _fuzz(live_server, scenario.users["reader"], "reader", scenario, artifacts_dir)
    _assert_clean(report)
