"""OpenAPI (drf-spectacular) extensions for the accounts app's authentication
classes. Imported by accounts/api/urls.py, so they are registered wherever the
API's URLs are loaded (schema generation included)."""

from drf_spectacular.authentication import BasicScheme


class LockoutAwareBasicScheme(BasicScheme):
    """HTTP Basic that answers a locked account with 429: still HTTP Basic."""

    target_class = "annotation_server.accounts.lockout.LockoutAwareBasicAuthentication"
