"""Content-Security-Policy on every response, from settings.CONTENT_SECURITY_POLICY
(a dict: directive -> list of sources).

Pages keep their scripts in static ES modules (no inline <script>, no on...=
handlers, no javascript: URLs), so the policy can refuse inline script: an
injected <script> or attribute does not run. A response that already has the
header (a view that needs its own policy) keeps it.

This module imports no app.
"""

from __future__ import annotations

from django.conf import settings

HEADER = "Content-Security-Policy"


def policy_header(policy: dict[str, list[str]]) -> str:
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if HEADER not in response.headers:
            # read per response (a dozen short strings), so a test may change it
            response.headers[HEADER] = policy_header(settings.CONTENT_SECURITY_POLICY)
        return response
