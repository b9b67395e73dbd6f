"""A browser-like HTTP client of the web host: the sign-in form, the session
cookie, and the CSRF token on every unsafe request (as the pages' scripts send
it), plus waits on jobs through /api/v1/jobs/{id}/."""

from __future__ import annotations

import re
import time

import requests


class WebError(AssertionError):
    """The web node answered something the test did not expect."""


class Browser:
    def __init__(self, base_url: str):
        self.base = base_url.rstrip("/")
        self.http = requests.Session()

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base}{path}"

    def login(self, username: str, password: str) -> Browser:
        page = self.http.get(self.url("/login/"), timeout=30)
        if page.status_code != 200:
            raise WebError(f"GET /login/: HTTP {page.status_code}")
        token = self.http.cookies.get("csrftoken")
        answer = self.http.post(
            self.url("/login/"),
            data={"username": username, "password": password, "csrfmiddlewaretoken": token},
            headers={"Referer": self.url("/login/")},
            allow_redirects=False,
            timeout=30,
        )
        if answer.status_code != 302 or "sessionid" not in self.http.cookies:
            raise WebError(f"sign-in as {username} failed: HTTP {answer.status_code}")
        return self

    def _headers(self, extra: dict | None = None) -> dict:
        headers = {"X-CSRFToken": self.http.cookies.get("csrftoken", ""), "Referer": self.base}
        headers.update(extra or {})
        return headers

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        return self.http.get(self.url(path), **kw)

    def post(self, path: str, headers: dict | None = None, **kw) -> requests.Response:
        kw.setdefault("timeout", 120)
        return self.http.post(self.url(path), headers=self._headers(headers), **kw)

    def put(self, path: str, headers: dict | None = None, **kw) -> requests.Response:
        kw.setdefault("timeout", 60)
        return self.http.put(self.url(path), headers=self._headers(headers), **kw)

    def form(self, path: str, data: dict) -> requests.Response:
        """POST a page's form, with the CSRF token field a rendered form carries."""
        data = {**data, "csrfmiddlewaretoken": self.http.cookies.get("csrftoken", "")}
        return self.post(path, data=data, allow_redirects=False)

    def json(self, method: str, path: str, expect: int, **kw):
        answer = getattr(self, method)(path, **kw)
        if answer.status_code != expect:
            raise WebError(
                f"{method.upper()} {path}: HTTP {answer.status_code}, expected {expect}: "
                f"{answer.text[:800]}"
            )
        return answer.json() if answer.content else None

    def wait_job(self, job_id: int, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.json("get", f"/api/v1/jobs/{job_id}/", 200)
            if job["finished_at"]:
                if job["state"] != "succeeded":
                    raise WebError(f"job {job_id} ({job['kind']}) {job['state']}: {job['error']}")
                return job
            if time.monotonic() > deadline:
                raise WebError(f"job {job_id} ({job['kind']}) not finished after {timeout:g}s")
            time.sleep(0.3)

    def meta(self, path: str, name: str) -> str:
        """The content of a page's <meta name=NAME> (what the page's scripts read)."""
        page = self.get(path)
        if page.status_code != 200:
            raise WebError(f"GET {path}: HTTP {page.status_code}")
        found = re.search(rf'<meta name="{re.escape(name)}" content="([^"]*)"', page.text)
        if not found:
            raise WebError(f"{path} has no <meta name={name}>")
        return found.group(1)
