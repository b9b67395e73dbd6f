"""The web shell: login, home with progress, worklist, language, health, API root."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from annotation_server.projects.models import Case
from tests import factories

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_users_are_sent_to_login():
    response = Client().get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert Client().get("/api/v1/projects/").status_code in (401, 403)


def test_login_with_password_lands_on_home(reader_a, project):
    client = Client()
    response = client.post(
        "/login/", {"username": "reader_a", "password": factories.PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert b"Lung nodule CT" in response.content


def test_wrong_password_is_refused_with_a_message(reader_a):
    response = Client(HTTP_ACCEPT_LANGUAGE="en").post(
        "/login/", {"username": "reader_a", "password": "nope"}
    )
    assert response.status_code == 200
    assert b"Please try again" in response.content
    assert response.wsgi_request.user.is_anonymous


def test_home_shows_managers_state_counts_and_readers_only_their_own(
    project, case, tasks, manager, reader_a
):
    factories.CaseFactory(project=project, state=Case.State.ADJUDICATED)
    managed = login(manager).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-project="lung"' in managed
    assert "adjudicated</span> <b>1</b>" in managed and "reading</span> <b>1</b>" in managed
    read = login(reader_a).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "0 of 1 submitted" in read
    assert "adjudicated</span>" not in read


def test_outsider_sees_no_projects(project, outsider):
    page = login(outsider).get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-project="lung"' not in page
    assert "no role in any project" in page


def test_worklist_lists_only_own_tasks(tasks, reader_a):
    page = login(reader_a).get("/worklist/").content.decode()
    assert f'data-task="{tasks["reader_a"].pk}"' in page
    assert f'data-task="{tasks["reader_b"].pk}"' not in page


def test_language_switch_changes_the_interface(reader_a, project):
    client = login(reader_a)
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "My projects" in client.get("/").content.decode()
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    page = client.get("/").content.decode()
    assert "My projects" not in page
    assert "我的项目" in page


def test_healthz_reports_database_broker_and_storage():
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 200, body
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert body["checks"]["database"]["detail"].startswith("postgresql")
    assert body["checks"]["broker"]["detail"] == "reachable"


def test_healthz_says_503_when_the_broker_is_down(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = Client().get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False


def test_api_root_schema_and_docs(reader_a):
    client = login(reader_a)
    root = client.get("/api/v1/").json()
    assert {"projects", "cases", "reading-tasks", "findings", "jobs", "me"} <= set(root)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/findings/{id}/" in schema.json()["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    assert b"cdn" not in docs.content.lower()


LOCALE = Path(__file__).resolve().parents[2] / "annotation_server/locale/zh_Hans/LC_MESSAGES"


@pytest.mark.parametrize("domain", ["django", "djangojs"])
def test_translations_are_complete_and_compiled(domain):
    import gettext
    import io
    import subprocess

    po = LOCALE / f"{domain}.po"
    stats = subprocess.run(
        ["msgfmt", "--check", "--statistics", "-o", "/dev/null", str(po)],
        capture_output=True,
        text=True,
    )
    assert stats.returncode == 0, stats.stderr
    assert "translated message" in stats.stderr
    assert "untranslated" not in stats.stderr and "fuzzy" not in stats.stderr, stats.stderr
    fresh = subprocess.run(["msgfmt", "-o", "-", str(po)], capture_output=True)
    compiled = gettext.GNUTranslations(io.BytesIO(fresh.stdout))._catalog
    with open(LOCALE / f"{domain}.mo", "rb") as fh:
        shipped = gettext.GNUTranslations(fh)._catalog
    assert shipped == compiled, f"{domain}.mo is stale: run make messages"


def test_every_javascript_string_is_in_the_catalogue():
    """A gettext("...") call in a static module whose string makemessages never saw
    would stay English in the Chinese UI."""
    import gettext
    import re

    static = Path(__file__).resolve().parents[2] / "frontend_templates/static/refset"
    calls = re.compile(r"""\bgettext\(\s*(["'])((?:\\.|(?!\1).)*)\1\s*\)""")
    with open(LOCALE / "djangojs.mo", "rb") as fh:
        catalog = gettext.GNUTranslations(fh)._catalog
    found, missing = 0, []
    for module in sorted(static.rglob("*.js")):
        for match in calls.finditer(module.read_text(encoding="utf-8")):
            found += 1
            msgid = match.group(2).encode("latin-1", "backslashreplace").decode("unicode_escape")
            if msgid not in catalog:
                missing.append(f"{module.relative_to(static)}: {msgid}")
    assert found > 50, "the viewer's strings go through gettext()"
    assert not missing, "run make messages: " + "; ".join(missing[:20])


def test_huge_limit_and_offset_are_bounded_not_500(reader_a, project):
    """A 40-digit limit or offset once reached the database (500)."""
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=reader_a.username, password=factories.PASSWORD)
    huge = "9" * 40
    page = client.get(f"/api/v1/projects/?limit={huge}")
    assert page.status_code == 200 and "results" in page.json()
    refused = client.get(f"/api/v1/projects/?offset={huge}")
    assert refused.status_code == 400
    assert "offset must be at most" in refused.json()["offset"][0]
    assert client.get("/api/v1/projects/?offset=-1").status_code == 400
    qido = client.get(f"/dicomweb/studies?limit={huge}")
    assert qido.status_code == 400 and "limit must be at most" in qido.json()["detail"]
