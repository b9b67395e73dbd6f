"""The route sweep: every URL the project serves (from the resolver, so a new
endpoint cannot be forgotten), requested as every persona through a real
session login. Nothing answers 5xx; someone outside the project gets 404, never
403, and never sees its data; what each persona gets is the access table below.

To see what the code answers today: SWEEP_DUMP=/tmp/sweep.txt and run
test_get_sweep_matches_the_access_table; the file holds the table as it is.
"""

from __future__ import annotations

import os

import pytest
from django.test import Client

from tests import factories
from tests.permissions.routes import PERSONAS, build_scenario, concrete_routes

pytestmark = pytest.mark.django_db

# What a GET answers, per route and persona. ok 200 · redirect 302 (pages send the
# anonymous to the login) · login 401 (DICOMweb asks for credentials) · deny 403
# (the project is visible to them, the action is not theirs) · hidden 404 (they
# may not know the object exists) · method 405 (the route takes POST/PUT only).
# List routes answer ok to everyone signed in: their rows are filtered by
# visible_to (checked by the blinding tests and by the "other" sweep below).
ROUTE_ACCESS = """
route                             anonymous   reader      reader2     unqualified arbitrator  manager     other       admin
home                              redirect    ok          ok          ok          ok          ok          ok          ok
worklist                          redirect    ok          ok          ok          ok          ok          ok          ok
worklist-next                     redirect    redirect    redirect    redirect    redirect    redirect    redirect    redirect
workstation                       redirect    ok          hidden      hidden      hidden      hidden      hidden      hidden
series-reference                  redirect    redirect    hidden      hidden      hidden      hidden      hidden      hidden
assignments                       redirect    deny        deny        deny        deny        ok          hidden      ok
assignments-run                   redirect    method      method      method      method      method      method      method
assignments-reassign              redirect    method      method      method      method      method      method      method
api-assignments                   deny        deny        deny        deny        deny        ok          hidden      ok
api-assignments-run               deny        method      method      method      method      method      method      method
api-assignments-reassign          deny        method      method      method      method      method      method      method
project_overview                  redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
api_overview                      deny        hidden      hidden      hidden      hidden      ok          hidden      ok
case-withdraw                     redirect    method      method      method      method      method      method      method
case-return                       redirect    method      method      method      method      method      method      method
api-case-withdraw                 deny        method      method      method      method      method      method      method
api-case-return                   deny        method      method      method      method      method      method      method
case-reference                    redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
case-reference-reopen             redirect    method      method      method      method      method      method      method
case-force-settle                 redirect    method      method      method      method      method      method      method
arbitration-reassign              redirect    method      method      method      method      method      method      method
api-case-reference                deny        hidden      hidden      hidden      hidden      ok          hidden      ok
api-case-reference-reopen         deny        method      method      method      method      method      method      method
api-case-force-settle             deny        method      method      method      method      method      method      method
api-arbitration-reassign          deny        method      method      method      method      method      method      method
api-arbitration-stuck             deny        hidden      hidden      hidden      hidden      ok          hidden      ok
qc-rerun-result                   redirect    hidden      hidden      hidden      hidden      hidden      hidden      hidden
reads-import                      redirect    deny        deny        deny        deny        ok          hidden      ok
reads-export                      redirect    deny        deny        deny        deny        ok          hidden      ok
api-reads-import                  deny        method      method      method      method      method      method      method
api-reads-export                  deny        deny        deny        deny        deny        ok          hidden      ok
assist-models                     redirect    deny        deny        deny        deny        ok          hidden      ok
assist-models-finetune            redirect    method      method      method      method      method      method      method
assist-models-promote             redirect    method      method      method      method      method      method      method
api-assist-models                 deny        deny        deny        deny        deny        ok          hidden      ok
api-assist-models-finetune        deny        method      method      method      method      method      method      method
api-assist-models-promote         deny        method      method      method      method      method      method      method
arbitration-queue                 redirect    ok          ok          ok          ok          ok          ok          ok
arbitrate                         redirect    hidden      hidden      hidden      ok          hidden      hidden      hidden
import                            redirect    deny        deny        deny        deny        ok          hidden      ok
import-report                     redirect    deny        deny        deny        deny        ok          hidden      ok
import-job-report                 redirect    deny        deny        deny        deny        hidden      hidden      hidden
series-viewer                     redirect    deny        deny        deny        deny        ok          hidden      ok
pacs-add                          redirect    deny        deny        deny        deny        ok          hidden      ok
pacs-search                       redirect    deny        deny        deny        deny        ok          hidden      ok
pacs-pull                         redirect    method      method      method      method      method      method      method
quarantine                        redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
quarantine-review                 redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
quarantine-image                  redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
api-quarantine                    deny        hidden      hidden      hidden      hidden      ok          hidden      ok
api-quarantine-detail             deny        hidden      hidden      hidden      hidden      ok          hidden      ok
api-quarantine-preview            deny        method      method      method      method      method      method      method
api-quarantine-redact             deny        method      method      method      method      method      method      method
api-quarantine-release            deny        method      method      method      method      method      method      method
api-quarantine-reject             deny        method      method      method      method      method      method      method
api-import                        deny        method      method      method      method      method      method      method
api-identity-reveal               deny        method      method      method      method      method      method      method
dicomweb-studies                  login       ok          ok          ok          ok          ok          ok          ok
dicomweb-project-studies          login       ok          ok          ok          ok          ok          hidden      ok
qido-studies                      login       ok          ok          ok          ok          ok          ok          ok
qido-all-series                   login       ok          ok          ok          ok          ok          ok          ok
qido-all-instances                login       ok          ok          ok          ok          ok          ok          ok
wado-study                        login       ok          ok          hidden      hidden      ok          hidden      ok
wado-study-metadata               login       ok          ok          hidden      hidden      ok          hidden      ok
qido-series                       login       ok          ok          ok          ok          ok          ok          ok
qido-study-instances              login       ok          ok          ok          ok          ok          ok          ok
wado-series                       login       ok          ok          hidden      hidden      ok          hidden      ok
wado-series-metadata              login       ok          ok          hidden      hidden      ok          hidden      ok
qido-instances                    login       ok          ok          ok          ok          ok          ok          ok
wado-instance                     login       ok          ok          hidden      hidden      ok          hidden      ok
wado-instance-metadata            login       ok          ok          hidden      hidden      ok          hidden      ok
wado-instance-rendered            login       ok          ok          hidden      hidden      ok          hidden      ok
wado-frames                       login       ok          ok          hidden      hidden      ok          hidden      ok
wado-frame-rendered               login       ok          ok          hidden      hidden      ok          hidden      ok
qido-studies~project              login       ok          ok          ok          ok          ok          hidden      ok
qido-all-series~project           login       ok          ok          ok          ok          ok          hidden      ok
qido-all-instances~project        login       ok          ok          ok          ok          ok          hidden      ok
wado-study~project                login       ok          ok          hidden      hidden      ok          hidden      ok
wado-study-metadata~project       login       ok          ok          hidden      hidden      ok          hidden      ok
qido-series~project               login       ok          ok          ok          ok          ok          hidden      ok
qido-study-instances~project      login       ok          ok          ok          ok          ok          hidden      ok
wado-series~project               login       ok          ok          hidden      hidden      ok          hidden      ok
wado-series-metadata~project      login       ok          ok          hidden      hidden      ok          hidden      ok
qido-instances~project            login       ok          ok          ok          ok          ok          hidden      ok
wado-instance~project             login       ok          ok          hidden      hidden      ok          hidden      ok
wado-instance-metadata~project    login       ok          ok          hidden      hidden      ok          hidden      ok
wado-instance-rendered~project    login       ok          ok          hidden      hidden      ok          hidden      ok
wado-frames~project               login       ok          ok          hidden      hidden      ok          hidden      ok
wado-frame-rendered~project       login       ok          ok          hidden      hidden      ok          hidden      ok
healthz                           ok          ok          ok          ok          ok          ok          ok          ok
login                             ok          ok          ok          ok          ok          ok          ok          ok
set_language                      redirect    redirect    redirect    redirect    redirect    redirect    redirect    redirect
javascript-catalog                ok          ok          ok          ok          ok          ok          ok          ok
qc                                redirect    deny        deny        deny        deny        ok          hidden      ok
qc-rerun                          redirect    method      method      method      method      method      method      method
qc-distribution-csv               redirect    deny        deny        deny        deny        ok          hidden      ok
qc-override                       redirect    method      method      method      method      method      method      method
agreement                         redirect    deny        deny        deny        deny        ok          hidden      ok
agreement-compute                 redirect    method      method      method      method      method      method      method
agreement-settings                redirect    method      method      method      method      method      method      method
agreement-json                    redirect    deny        deny        deny        deny        hidden      hidden      hidden
agreement-csv                     redirect    deny        deny        deny        deny        hidden      hidden      hidden
agreement-figure-png              redirect    deny        deny        deny        deny        hidden      hidden      hidden
agreement-figure-svg              redirect    deny        deny        deny        deny        hidden      hidden      hidden
assistance                        redirect    deny        deny        deny        deny        ok          hidden      ok
assistance-run                    redirect    method      method      method      method      method      method      method
api-agreement                     deny        deny        deny        deny        deny        hidden      hidden      hidden
qualification                     redirect    ok          ok          ok          ok          redirect    hidden      ok
qualification-start               redirect    method      method      method      method      method      method      method
qualification-attempt             redirect    hidden      hidden      ok          hidden      ok          hidden      ok
qualification-manage              redirect    deny        deny        deny        deny        ok          hidden      ok
qualification-settings            redirect    method      method      method      method      method      method      method
qualification-cases               redirect    method      method      method      method      method      method      method
qualification-reference           redirect    method      method      method      method      method      method      method
qualification-copy                redirect    method      method      method      method      method      method      method
me-list                           deny        ok          ok          ok          ok          ok          ok          ok
site-list                         deny        deny        deny        deny        deny        deny        deny        ok
site-detail                       deny        deny        deny        deny        deny        deny        deny        ok
project-list                      deny        ok          ok          ok          ok          ok          ok          ok
project-detail                    deny        ok          ok          ok          ok          ok          hidden      ok
project-progress                  deny        ok          ok          ok          ok          ok          hidden      ok
case-list                         deny        ok          ok          ok          ok          ok          ok          ok
case-detail                       deny        ok          ok          hidden      hidden      ok          hidden      ok
study-list                        deny        ok          ok          ok          ok          ok          ok          ok
study-detail                      deny        ok          ok          hidden      hidden      ok          hidden      ok
series-list                       deny        ok          ok          ok          ok          ok          ok          ok
series-detail                     deny        ok          ok          hidden      hidden      ok          hidden      ok
series-pixels                     deny        ok          ok          hidden      hidden      ok          hidden      ok
series-thumbnail                  deny        ok          ok          hidden      hidden      ok          hidden      ok
api-case-series                   deny        ok          ok          hidden      hidden      ok          hidden      ok
instance-list                     deny        ok          ok          ok          ok          ok          ok          ok
instance-detail                   deny        ok          ok          hidden      hidden      ok          hidden      ok
instance-pixels                   deny        ok          ok          hidden      hidden      ok          hidden      ok
instance-rendered                 deny        ok          ok          hidden      hidden      ok          hidden      ok
readingtask-list                  deny        ok          ok          ok          ok          ok          ok          ok
readingtask-detail                deny        ok          hidden      hidden      hidden      ok          hidden      ok
readingtask-case-label            deny        ok          hidden      hidden      hidden      ok          hidden      ok
readingtask-heartbeat             deny        method      method      method      method      method      method      method
readingtask-start                 deny        method      method      method      method      method      method      method
readingtask-submit                deny        method      method      method      method      method      method      method
readingtask-proposals             deny        ok          hidden      hidden      hidden      ok          hidden      ok
readingtask-case-probabilities    deny        ok          hidden      hidden      hidden      ok          hidden      ok
readingtask-proposal-accept       deny        method      method      method      method      method      method      method
readingtask-proposal-edit         deny        method      method      method      method      method      method      method
readingtask-proposal-reject       deny        method      method      method      method      method      method      method
finding-list                      deny        ok          ok          ok          ok          ok          ok          ok
finding-detail                    deny        ok          hidden      hidden      hidden      ok          hidden      ok
qualificationtest-list            deny        ok          ok          ok          ok          ok          ok          ok
qualificationtest-detail          deny        ok          ok          ok          hidden      ok          hidden      ok
qualificationtest-copy-reference  deny        method      method      method      method      method      method      method
qualificationtest-readers         deny        deny        deny        deny        hidden      ok          hidden      ok
qualificationtest-reference       deny        method      method      method      method      method      method      method
qualificationtest-start           deny        method      method      method      method      method      method      method
qualificationattempt-list         deny        ok          ok          ok          ok          ok          ok          ok
qualificationattempt-detail       deny        hidden      hidden      ok          hidden      ok          hidden      ok
arbitrationtask-list              deny        ok          ok          ok          ok          ok          ok          ok
arbitrationtask-detail            deny        hidden      hidden      hidden      ok          ok          hidden      ok
arbitrationtask-decisions         deny        method      method      method      method      method      method      method
arbitrationtask-sign              deny        method      method      method      method      method      method      method
cluster-list                      deny        ok          ok          ok          ok          ok          ok          ok
cluster-detail                    deny        hidden      hidden      hidden      hidden      hidden      hidden      hidden
referencefinding-list             deny        ok          ok          ok          ok          ok          ok          ok
referencefinding-detail           deny        hidden      hidden      hidden      hidden      hidden      hidden      hidden
adjudication-detail               deny        hidden      hidden      hidden      ok          ok          hidden      ok
adjudication-reopen               deny        method      method      method      method      method      method      method
adjudication-settle               deny        method      method      method      method      method      method      method
job-list                          deny        ok          ok          ok          ok          ok          ok          ok
job-detail                        deny        hidden      hidden      hidden      hidden      ok          hidden      ok
api-root                          deny        ok          ok          ok          ok          ok          ok          ok
project_list                      redirect    ok          ok          ok          ok          ok          ok          ok
project_create                    redirect    deny        deny        deny        deny        deny        deny        ok
sites                             redirect    deny        deny        deny        deny        deny        deny        ok
project_edit                      redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
project_schema                    redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
project_qc_profile                redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
project_members                   redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
project_member                    redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
project_member_deactivate         redirect    method      method      method      method      method      method      method
project_member_invitation         redirect    method      method      method      method      method      method      method
accept_invitation                 hidden      hidden      hidden      hidden      hidden      hidden      hidden      hidden
api_schema                        deny        method      method      method      method      method      method      method
api_qc_profile                    deny        hidden      hidden      hidden      hidden      ok          hidden      ok
api_members                       deny        hidden      hidden      hidden      hidden      ok          hidden      ok
api_member                        deny        hidden      hidden      hidden      hidden      ok          hidden      ok
api_member_deactivate             deny        method      method      method      method      method      method      method
api_member_invitation             deny        method      method      method      method      method      method      method
labelschema-list                  deny        ok          ok          ok          ok          ok          ok          ok
schema                            ok          ok          ok          ok          ok          ok          ok          ok
api-docs                          ok          ok          ok          ok          ok          ok          ok          ok
versions                          redirect    deny        deny        deny        deny        ok          hidden      ok
version                           redirect    deny        deny        deny        deny        ok          hidden      ok
version_freeze                    redirect    method      method      method      method      method      method      method
version_redraw                    redirect    method      method      method      method      method      method      method
version_retire                    redirect    method      method      method      method      method      method      method
version_discard                   redirect    method      method      method      method      method      method      method
export_start                      redirect    method      method      method      method      method      method      method
export_download                   redirect    hidden      hidden      hidden      hidden      hidden      hidden      hidden
evaluations                       redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
evaluation                        redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
evaluation_download               redirect    hidden      hidden      hidden      hidden      ok          hidden      ok
datasetversion-list               deny        ok          ok          ok          ok          ok          ok          ok
datasetversion-detail             deny        hidden      hidden      hidden      hidden      ok          hidden      ok
datasetversion-freeze             deny        method      method      method      method      method      method      method
datasetversion-cases              deny        hidden      hidden      hidden      hidden      ok          hidden      ok
datasetversion-splits             deny        hidden      hidden      hidden      hidden      ok          hidden      ok
datasetversion-changelog          deny        hidden      hidden      hidden      hidden      ok          hidden      ok
datasetversion-evaluations        deny        hidden      hidden      hidden      hidden      ok          hidden      ok
datasetversion-evaluation         deny        hidden      hidden      hidden      hidden      ok          hidden      ok
outbox                            redirect    deny        deny        deny        deny        ok          hidden      ok
writeback-destination-list        deny        ok          ok          ok          ok          ok          ok          ok
writeback-destination-detail      deny        hidden      hidden      hidden      hidden      ok          hidden      ok
writeback-destination-mark-inside deny        method      method      method      method      method      method      method
writeback-destination-send-case   deny        method      method      method      method      method      method      method
writeback-destination-send-version deny       method      method      method      method      method      method      method
outbox-item-list                  deny        ok          ok          ok          ok          ok          ok          ok
outbox-item-detail                deny        hidden      hidden      hidden      hidden      ok          hidden      ok
outbox-item-retry                 deny        method      method      method      method      method      method      method
outbox-item-cancel                deny        method      method      method      method      method      method      method
logout                            method      method      method      method      method      method      method      method
"""

STATUS = {
    200: "ok",
    301: "moved",
    302: "redirect",
    400: "bad",
    401: "login",
    403: "deny",
    404: "hidden",
    405: "method",
    415: "media",
}


def access_table() -> dict[str, dict[str, str]]:
    lines = [line.split() for line in ROUTE_ACCESS.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert tuple(header[1:]) == PERSONAS, header
    table = {}
    for name, *verdicts in rows:
        assert len(verdicts) == len(PERSONAS), name
        table[name] = dict(zip(PERSONAS, verdicts, strict=True))
    return table


@pytest.fixture
def scenario(site, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return build_scenario(site)


def signed_in(scenario) -> dict[str, Client]:
    out = {}
    for persona in PERSONAS:
        client = Client(HTTP_ACCEPT_LANGUAGE="en", raise_request_exception=False)
        if persona != "anonymous":
            user = scenario.users[persona]
            assert client.login(username=user.username, password=factories.PASSWORD)
        out[persona] = client
    return out


def test_every_route_is_in_the_access_table(scenario):
    names = [route.name for route in concrete_routes(scenario)]
    assert len(names) == len(set(names)), "two routes share a name"
    table = access_table()
    missing = sorted(set(names) - set(table))
    assert not missing, f"routes with no row in ROUTE_ACCESS: {missing}"
    assert not sorted(set(table) - set(names)), "rows for routes that no longer exist"


def test_get_sweep_matches_the_access_table(scenario):
    web = signed_in(scenario)
    seen: dict[str, dict[str, str]] = {}
    errors = []
    for route in concrete_routes(scenario):
        if route.name == "logout":
            continue  # a GET is refused (405); POST is swept last
        row = {}
        for persona, client in web.items():
            code = client.get(route.path).status_code
            if code >= 500:
                errors.append(f"GET {route.path} as {persona}: {code}")
            row[persona] = STATUS.get(code, str(code))
        seen[route.name] = row
    dump = os.environ.get("SWEEP_DUMP")
    if dump:
        with open(dump, "w") as f:
            f.write(f"{'route':<33} " + " ".join(f"{p:<11}" for p in PERSONAS).rstrip() + "\n")
            for name, row in seen.items():
                f.write(f"{name:<33} " + " ".join(f"{row[p]:<11}" for p in PERSONAS).rstrip())
                f.write("\n")
    assert not errors, errors
    expected = access_table()
    diffs = [
        f"{name} as {persona}: expected {expected[name][persona]}, got {got}"
        for name, row in seen.items()
        for persona, got in row.items()
        if name in expected and expected[name][persona] != got
    ]
    assert not diffs, "\n".join(diffs)


def test_someone_from_another_project_learns_nothing(scenario):
    """Every route, as a manager+reader+arbitrator of another project: objects of
    this project are 404 (a 403 would say they exist) and no body names them."""
    client = signed_in(scenario)["other"]
    for route in concrete_routes(scenario):
        if route.name == "logout":
            continue
        response = client.get(route.path)
        if route.names_objects:
            assert response.status_code != 403, route.path
        if response.status_code == 200 and not response.get("Content-Type", "").startswith(
            ("image/", "application/octet-stream", "multipart/")
        ):
            body = b"".join(response) if response.streaming else response.content
            text = body.decode("utf-8", "replace")
            leaked = [s for s in scenario.secrets if s in text]
            assert not leaked, (route.path, leaked)


def test_post_sweep_never_fails_with_5xx_and_never_lets_the_anonymous_in(scenario):
    """An empty POST to every route as every persona: refused or handled, never a
    server error; the anonymous never succeed; outsiders get 404, not 403, for
    this project's objects. Logout goes last (it ends the session)."""
    web = signed_in(scenario)
    routes = sorted(concrete_routes(scenario), key=lambda r: r.name == "logout")
    errors = []
    for route in routes:
        for persona, client in web.items():
            code = client.post(route.path, {}).status_code
            if code >= 500:
                errors.append(f"POST {route.path} as {persona}: {code}")
            if persona == "anonymous" and 200 <= code < 300 and route.name != "login":
                errors.append(f"POST {route.path} as anonymous: {code}")
            if persona == "other" and code == 403 and route.names_objects:
                errors.append(f"POST {route.path} as other: 403 tells the project exists")
    assert not errors, "\n".join(errors)
