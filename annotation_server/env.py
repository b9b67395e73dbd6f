"""Typed helpers that read settings from environment variables.

Every setting RefSet reads from the environment goes through one of these, so a
wrong value stops start-up with a message naming the variable instead of
surfacing later as a confusing error.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


SUPPORTED_DB_SCHEMES = ("postgres", "postgresql", "sqlite")


def env_database(name: str, sqlite_default: str) -> tuple[dict, bool]:
    """Parse the database URL in `name`.

    Returns (Django DATABASES['default'] dict, embedded) where embedded is True
    when the variable is unset and the embedded SQLite database is used.
    A set but malformed or unsupported URL raises ImproperlyConfigured naming
    the variable.
    """
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return (
            {"ENGINE": "django.db.backends.sqlite3", "NAME": sqlite_default},
            True,
        )
    parsed = urlparse(raw)
    if parsed.scheme not in SUPPORTED_DB_SCHEMES:
        raise ImproperlyConfigured(
            f"{name} has unsupported scheme {parsed.scheme!r}: expected one of "
            f"{', '.join(SUPPORTED_DB_SCHEMES)} (e.g. postgresql://user@127.0.0.1:5432/refset)."
        )
    import dj_database_url

    try:
        config = dj_database_url.parse(raw, conn_max_age=60)
    except Exception as exc:  # dj_database_url raises a variety of errors
        raise ImproperlyConfigured(f"{name} could not be parsed: {exc}") from None
    if parsed.scheme != "sqlite" and not config.get("NAME"):
        raise ImproperlyConfigured(f"{name} names no database (the path after the host).")
    return config, False
