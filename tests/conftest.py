"""Shared fixtures: personas (reader_a, reader_b, reader_c, arbitrator, manager,
outsider), a lung-CT project in reading with three blind reads per case, and
API clients logged in as each persona."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from annotation_server.accounts.models import Role
from annotation_server.projects.services import grant_role
from tests import factories

ARTIFACTS = Path(
    os.environ.get("REFSET_TEST_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts")
)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def site(db):
    return factories.SiteFactory(code="S01", name="示例大学附属医院")


def _person(username: str, site, **profile):
    return factories.UserFactory(
        username=username, profile__site=site, **{f"profile__{k}": v for k, v in profile.items()}
    )


@pytest.fixture
def reader_a(db, site):
    return _person("reader_a", site, title="attending", years_experience=8)


@pytest.fixture
def reader_b(db, site):
    return _person("reader_b", site, title="associate_chief", years_experience=15)


@pytest.fixture
def reader_c(db, site):
    return _person("reader_c", site, title="resident", years_experience=3)


@pytest.fixture
def arbitrator(db, site):
    return _person("arbitrator", site, title="chief", years_experience=25)


@pytest.fixture
def manager(db, site):
    return _person("manager", site)


@pytest.fixture
def outsider(db, site):
    return _person("outsider", site)


@pytest.fixture
def project(db, reader_a, reader_b, reader_c, arbitrator, manager):
    project = factories.ProjectFactory(slug="lung", name="Lung nodule CT")
    for reader in (reader_a, reader_b, reader_c):
        grant_role(project, reader, Role.READER)
    grant_role(project, arbitrator, Role.ARBITRATOR)
    grant_role(project, manager, Role.MANAGER)
    return project


@pytest.fixture
def case(project):
    return factories.CaseFactory(project=project, code="C0001")


@pytest.fixture
def tasks(case, reader_a, reader_b, reader_c):
    """Three blind phase-1 reads of `case`, keyed by persona name."""
    return {
        name: factories.TaskFactory(case=case, reader=reader)
        for name, reader in (("reader_a", reader_a), ("reader_b", reader_b), ("reader_c", reader_c))
    }


@pytest.fixture
def client_for():
    def make(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make
