"""Production hardening: `check --deploy` is clean, every response carries a
Content-Security-Policy that forbids inline scripts (but the listed static ones,
each allowed by the sha256 of its exact text), templates hold no inline script,
and weak passwords are refused."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "frontend_templates" / "templates"


def _production_env(**extra) -> dict[str, str]:
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REFSET_DEMO"))}
    env.update(
        DJANGO_SETTINGS_MODULE="annotation_server.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(48),
        DJANGO_ALLOWED_HOSTS="refset.hospital.example",
        REFSET_KEY_ENCRYPTION_KEY=base64.urlsafe_b64encode(os.urandom(32)).decode(),
        DATABASE_URL=f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    )
    env.update(extra)
    return env


def _deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.django_db
def test_production_settings_pass_check_deploy():
    result = _deploy_check(_production_env())
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_production_behind_a_tls_proxy_trusts_its_header_and_stays_clean():
    env = _production_env(DJANGO_SECURE_PROXY_SSL_HEADER="1", DJANGO_HSTS_PRELOAD="0")
    result = _deploy_check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(repr((s.SECURE_PROXY_SSL_HEADER, s.SECURE_HSTS_PRELOAD, s.SESSION_COOKIE_SECURE)))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert shown.stdout.strip() == "(('HTTP_X_FORWARDED_PROTO', 'https'), False, True)", shown


def _csp(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy", "")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


@pytest.mark.django_db
def test_pages_and_api_answers_carry_a_content_security_policy(reader_a, project):
    client = Client()
    client.force_login(reader_a)
    for url in ("/", "/worklist/", "/login/", "/api/v1/projects/", "/healthz", "/no-such-page/"):
        policy = _csp(client.get(url))
        assert policy["default-src"] == ["'self'"]
        scripts = policy.get("script-src", policy["default-src"])
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
        assert policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        # the viewer paints canvases from fetched buffers; no third-party origin anywhere
        assert set(policy["img-src"]) <= {"'self'", "data:", "blob:"}
        assert not any("http" in value for values in policy.values() for value in values)


@pytest.mark.django_db
def test_the_one_inline_script_is_allowed_by_the_hash_of_its_exact_text(reader_a, settings):
    """The workstation's early stream script is put inline (it must run before the
    style sheets, without a request): the policy names its sha256 and no other
    inline source, so an injected or altered script is still refused."""
    assert settings.CSP_INLINE_SCRIPTS == ["refset/viewer/prefetch.js"]
    html = render_to_string(
        "reading/_early_stream.html", {"series_api": "/api/v1/", "series_id": 7, "view_task": 3}
    )
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    assert "window.refsetEarly" in scripts[0]
    assert scripts[0] == (ROOT / "frontend_templates/static/refset/viewer/prefetch.js").read_text()
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    client = Client()
    client.force_login(reader_a)
    sources = _csp(client.get("/worklist/"))["script-src"]
    assert sources == ["'self'", f"'sha256-{digest}'"]
    # another text gets another hash, which the policy does not hold
    other = base64.b64encode(hashlib.sha256(scripts[0].encode() + b" ").digest()).decode()
    assert f"'sha256-{other}'" not in sources
    # only a listed file may be put inline
    settings.CSP_INLINE_SCRIPTS = []
    with pytest.raises(ImproperlyConfigured, match="not in CSP_INLINE_SCRIPTS"):
        render_to_string("reading/_early_stream.html", {"series_id": 7, "view_task": 3})


def test_templates_hold_no_inline_script_or_event_handler():
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>")
    handler = re.compile(r"\son[a-z]+\s*=", re.I)
    found = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        for pattern in (inline_script, handler, re.compile(r"javascript:", re.I)):
            found += [
                f"{path.relative_to(TEMPLATES)}: {m.group(0)}" for m in pattern.finditer(text)
            ]
    assert not found, "inline script is refused by the Content-Security-Policy:\n" + "\n".join(
        found
    )


@pytest.mark.parametrize("password", ["20240517", "13800138000", "1234567890123"])
def test_all_digit_passwords_are_refused(password):
    with pytest.raises(ValidationError) as refused:
        validate_password(password)
    assert "password_entirely_numeric" in {e.code for e in refused.value.error_list}


@pytest.mark.parametrize(
    "password,code",
    [("short7!", "password_too_short"), ("password123", "password_too_common")],
)
def test_short_and_common_passwords_are_refused(password, code):
    with pytest.raises(ValidationError) as refused:
        validate_password(password)
    assert code in {e.code for e in refused.value.error_list}


@pytest.mark.django_db
def test_admin_cannot_create_a_user_with_an_all_digit_password():
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "x-Admin-2024!")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(admin)
    add_page = client.get("/admin/auth/user/add/").content.decode()
    # the hidden fields the page carries (the profile inline's management form)
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', add_page))
    form.pop("csrfmiddlewaretoken", None)
    form.update({k: "0" for k in form if k.endswith("TOTAL_FORMS")})  # no profile yet
    form.update(
        username="reader9", password1="31415926535", password2="31415926535", usable_password="true"
    )
    response = client.post("/admin/auth/user/add/", form)
    assert response.status_code == 200  # the form again, with the error
    assert "entirely numeric" in response.content.decode()
    assert not get_user_model().objects.filter(username="reader9").exists()
    form.update(password1="Lung-nodules-2024", password2="Lung-nodules-2024")
    created = client.post("/admin/auth/user/add/", form)
    assert created.status_code == 302, re.findall(
        r'class="errorlist[^>]*>(.*?)</ul>', created.content.decode()
    )
    assert get_user_model().objects.filter(username="reader9").exists()


@pytest.mark.django_db
def test_check_deploy_says_the_demo_server_mode_is_not_production():
    env = _production_env(REFSET_DEMO="1")
    del env["DJANGO_SECRET_KEY"], env["REFSET_KEY_ENCRYPTION_KEY"]
    result = _deploy_check(env)
    assert result.returncode != 0
    assert "refset.W001" in result.stdout + result.stderr
