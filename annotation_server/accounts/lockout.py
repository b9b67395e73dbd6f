"""Locking an account after repeated wrong passwords (django-axes).

Every way a password reaches RefSet counts: the sign-in form (and the admin's),
HTTP Basic on the API and DICOMweb, and the password an arbitrator re-enters to
sign. Each goes through `django.contrib.auth.authenticate()` with the request,
so axes sees every failure and refuses a locked account before its password is
even checked. Accounts are locked by user name (settings.AXES_LOCKOUT_PARAMETERS):
readers in one hospital often share one outgoing address, so locking by address
would lock a whole department out.

How a lockout is answered, in the user's language:
- the sign-in page: the form again, with the lockout message (`lockout_response`,
  settings.AXES_LOCKOUT_CALLABLE, called by axes' middleware), status 429;
- the API and DICOMweb with HTTP Basic: 429 `{"detail": ..., "code":
  "account_locked"}` (`LockoutAwareBasicAuthentication`);
- the signature: the same, through `verify_password` and the domain-error path.

Unlocking before the cool-off ends is `manage.py unlock_account USERNAME
--reason ...`, which is audited; the admin shows the failure records read-only.
"""

from __future__ import annotations

import enum

from axes.backends import AxesStandaloneBackend
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_credentials
from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext, ngettext
from rest_framework import authentication, exceptions, status

from annotation_server.errors import DomainError


class AccountLocked(DomainError):
    """Too many wrong passwords for this account: refused until the cool-off ends
    or an administrator unlocks it."""

    status = status.HTTP_429_TOO_MANY_REQUESTS
    code = "account_locked"


def lockout_message() -> str:
    """What a locked-out person reads, in the active language."""
    cool_off = get_cool_off()
    if not cool_off:
        return gettext(
            "Too many wrong passwords: this account is locked until an administrator unlocks it."
        )
    minutes = max(1, round(cool_off.total_seconds() / 60))
    return ngettext(
        "Too many wrong passwords: this account is locked for %(minutes)d minute. "
        "Try again later, or ask an administrator to unlock it.",
        "Too many wrong passwords: this account is locked for %(minutes)d minutes. "
        "Try again later, or ask an administrator to unlock it.",
        minutes,
    ) % {"minutes": minutes}


def _wants_json(request: HttpRequest) -> bool:
    path = request.path_info or ""
    accept = request.META.get("HTTP_ACCEPT", "")
    return (
        path.startswith(("/api/", "/dicomweb/"))
        or "json" in accept
        or request.META.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest"
    )


def lockout_response(
    request: HttpRequest, original_response=None, credentials=None
) -> HttpResponse:
    """settings.AXES_LOCKOUT_CALLABLE: the sign-in page with the lockout message
    (the same page for the admin's sign-in), or the API's error shape."""
    error = AccountLocked(lockout_message())
    if _wants_json(request):
        return JsonResponse(error.payload(), status=error.status)
    username = (credentials or {}).get(settings.AXES_USERNAME_FORM_FIELD) or ""
    form = AuthenticationForm(request, initial={"username": username})
    context = {
        "form": form,
        "lockout_message": error.message,
        "next": request.POST.get("next", "") if request.method == "POST" else "",
    }
    return render(request, "registration/login.html", context, status=error.status)


class LockoutBackend(AxesStandaloneBackend):
    """First in AUTHENTICATION_BACKENDS: refuses a locked account before any other
    backend checks its password.

    Without a request there is no one to lock out (the test client's `login()`
    authenticates so), and axes' own backend would raise; this one lets the next
    backend decide. Every entry point of RefSet passes the request: the sign-in
    form, HTTP Basic, and `verify_password` (which makes one when it has none).
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockoutAwareBasicAuthentication(authentication.BasicAuthentication):
    """DRF's HTTP Basic, answering a locked account with 429 and the lockout
    message instead of "invalid username/password" (axes marks DRF's request,
    which its middleware never sees)."""

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            if request is not None and getattr(request, "axes_locked_out", False):
                raise AccountLocked(lockout_message()) from None
            raise


class PasswordCheck(enum.Enum):
    CORRECT = "correct"
    WRONG = "wrong"
    LOCKED = "locked"


def verify_password(request: HttpRequest | None, user, password: str) -> PasswordCheck:
    """Check `user`'s password like a sign-in, so wrong ones count towards the
    lockout and a locked account is refused even with the right one. Pass the
    request (DRF's or Django's); without one, a blank request stands in and the
    lockout by user name still applies."""
    if request is None:
        request = HttpRequest()
    found = authenticate(request, username=user.get_username(), password=password or "")
    if found is not None and found.pk == user.pk:
        return PasswordCheck.CORRECT
    if getattr(request, "axes_locked_out", False):
        return PasswordCheck.LOCKED
    return PasswordCheck.WRONG


def is_locked(username: str) -> bool:
    """Whether `username` is locked out now (for any request)."""
    return AxesProxyHandler.is_locked(HttpRequest(), get_credentials(username))


def unlock(username: str) -> int:
    """Forget the failures of `username` (unlocking it); the number of records
    removed. Callers audit it: see web's `unlock_account` command."""
    return AxesProxyHandler.reset_attempts(username=username)
