"""Content-Security-Policy on every response, from settings.CONTENT_SECURITY_POLICY
(a dict: directive -> list of sources).

Pages keep their scripts in static ES modules (no inline <script>, no on...=
handlers, no javascript: URLs), so the policy can refuse inline script: an
injected <script> or attribute does not run. A response that already has the
header (a view that needs its own policy) keeps it.

One exception, by content: a static file named in settings.CSP_INLINE_SCRIPTS may
be put inline in a page (template tag {% inline_script %}, web/templatetags), and
the policy allows its exact text by its sha256 ('sha256-...' in script-src), so it
runs without a request of its own (the workstation's early pixel stream, issue 17)
while any other inline script, an injected one included, is still refused.

This module imports no app.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import ImproperlyConfigured

HEADER = "Content-Security-Policy"

# static path -> ((file, mtime), text, source), read again when the file changes
_inline: dict[str, tuple[tuple[str, int], str, str]] = {}


def inline_script(path: str) -> tuple[str, str]:
    """The text of static file `path` (one of settings.CSP_INLINE_SCRIPTS), to be
    put inline in a page, and the script-src source that allows it ('sha256-...')."""
    if path not in settings.CSP_INLINE_SCRIPTS:
        raise ImproperlyConfigured(f"{path} is not in CSP_INLINE_SCRIPTS")
    found = finders.find(path)
    if not found:
        raise ImproperlyConfigured(f"CSP_INLINE_SCRIPTS names {path}, which is no static file")
    key = (str(found), Path(found).stat().st_mtime_ns)
    cached = _inline.get(path)
    if cached is None or cached[0] != key:
        text = Path(found).read_text(encoding="utf-8")
        if "</script" in text.lower() or "<!--" in text:
            raise ImproperlyConfigured(
                f"{path} cannot be put inside <script>: it holds </script or <!--"
            )
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")
        cached = _inline[path] = (key, text, f"'sha256-{digest}'")
    return cached[1], cached[2]


def current_policy() -> dict[str, list[str]]:
    """settings.CONTENT_SECURITY_POLICY with the inline scripts' hashes in script-src."""
    policy = dict(settings.CONTENT_SECURITY_POLICY)
    hashes = [inline_script(path)[1] for path in settings.CSP_INLINE_SCRIPTS]
    if hashes:
        policy["script-src"] = [*policy.get("script-src", policy.get("default-src", [])), *hashes]
    return policy


def policy_header(policy: dict[str, list[str]]) -> str:
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if HEADER not in response.headers:
            # read per response (a dozen short strings), so a test may change it
            response.headers[HEADER] = policy_header(current_policy())
        return response
