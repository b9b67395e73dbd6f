"""`manage.py serve` (what `make demo` runs) serves through gunicorn: it says how
RefSet runs first, parses chunked request bodies, and runs with DEBUG off."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(django_db_serialized_rollback, transactional_db):
    # serialized like every transactional test: a flush without it re-creates the
    # content types, and the next serialized test on this worker loads them twice
    db = connection.settings_dict
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_DEBUG", "REFSET_DEMO")}
    env["DATABASE_URL"] = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--addr", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.2)
    try:
        assert proc.poll() is None, proc.stdout.read()
        yield port, proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> str:
    """Stop the server's whole process group (gunicorn and its worker)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            return proc.communicate(timeout=20)[0] or ""
        except subprocess.TimeoutExpired:
            continue
    return proc.communicate()[0] or ""


def _login_form(port: int) -> tuple[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/login/", headers={"Accept-Language": "en"})
    response = conn.getresponse()
    page = response.read().decode()
    assert response.status == 200, page[:500]
    cookie = response.getheader("Set-Cookie").split(";")[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return cookie, token


def test_serve_parses_a_chunked_post_and_runs_without_debug(served):
    port, proc = served
    cookie, token = _login_form(port)
    body = f"csrfmiddlewaretoken={token}&username=nobody&password=wrong-password-1".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/login/",
        body=iter([body[:20], body[20:]]),
        headers={
            "Cookie": cookie,
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept-Language": "en",
            "Referer": f"http://127.0.0.1:{port}/login/",
        },
        encode_chunked=True,
    )
    response = conn.getresponse()
    page = response.read().decode()
    # The body reached the view: the CSRF token was read (no 403) and the form was
    # checked (the wrong password's message, not an empty form's "required").
    assert response.status == 200, page[:2000]
    assert "Please try again" in page
    assert "This field is required" not in page

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/no-such-page/", headers={"Accept-Language": "en"})
    response = conn.getresponse()
    page = response.read().decode()
    assert response.status == 404
    assert "Page not found at" not in page and "URLconf" not in page  # DEBUG is off
    assert 'data-testid="demo-banner"' in page  # ...and it still says it is a demo

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/static/refset/app.css")
    response = conn.getresponse()
    response.read()
    assert response.status == 200

    output = _stop(proc)
    assert output.index("RefSet starting") < output.index("database:")
    assert "gunicorn" in output.lower()
