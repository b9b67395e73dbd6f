"""Settings come from the environment; a wrong value stops start-up naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from annotation_server.env import env_bool, env_database, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


def test_env_bool_accepts_common_spellings_and_rejects_others(monkeypatch):
    monkeypatch.setenv("REFSET_X", "yes")
    assert env_bool("REFSET_X") is True
    monkeypatch.setenv("REFSET_X", "0")
    assert env_bool("REFSET_X", True) is False
    monkeypatch.setenv("REFSET_X", "maybe")
    with pytest.raises(ImproperlyConfigured, match="REFSET_X"):
        env_bool("REFSET_X")


def test_env_int_and_list(monkeypatch):
    monkeypatch.setenv("REFSET_N", "12")
    assert env_int("REFSET_N", 3) == 12
    monkeypatch.setenv("REFSET_N", "twelve")
    with pytest.raises(ImproperlyConfigured, match="REFSET_N"):
        env_int("REFSET_N", 3)
    monkeypatch.setenv("REFSET_L", "a, b,,c")
    assert env_list("REFSET_L") == ["a", "b", "c"]


def test_database_url_unset_means_embedded_sqlite(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config, embedded = env_database("DATABASE_URL", "/tmp/x.sqlite3")
    assert embedded is True
    assert config["ENGINE"] == "django.db.backends.sqlite3"


def test_database_url_postgres_is_parsed(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:5433/refset")
    config, embedded = env_database("DATABASE_URL", "/tmp/x.sqlite3")
    assert embedded is False
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("127.0.0.1", 5433, "refset")


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "postgresql://127.0.0.1:5432/"])
def test_wrong_database_url_stops_start_up_naming_the_variable(url):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["DATABASE_URL"] = url
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_production_without_secret_key_refuses_to_start():
    env = dict(os.environ, DJANGO_DEBUG="0", DJANGO_SECRET_KEY="")
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_framework_free_packages_import_without_django():
    code = (
        "import sys, qc, export, assist_models, fixtures\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.'))\n"
        "print('DJANGO' if loaded else 'CLEAN', loaded[:3])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("CLEAN"), result.stdout
