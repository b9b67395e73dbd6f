"""Versions through the REST API and the pages, signed in by session as a
browser is: managers draft, freeze and read; the sequestered test split is only
for managers holding datasets.view_sequestered; everyone else gets 404."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from annotation_server.datasets import services
from annotation_server.datasets.models import DatasetVersion
from annotation_server.datasets.package_input import build_package_input
from tests import factories
from tests.datasets.conftest import make_case


@pytest.fixture
def small(project, protocol, readers):
    return [
        make_case(project, readers, f"S{i:02d}", patient=f"PS{i:02d}", positive=i % 2 == 0)
        for i in range(8)
    ]


def _grant_sequestered(user):
    user.user_permissions.add(Permission.objects.get(codename="view_sequestered"))


@pytest.mark.django_db
def test_manager_drafts_and_freezes_through_the_api(small, project, manager, session_client_for):
    api = session_client_for(manager)
    resp = api.post(
        "/api/v1/dataset-versions/",
        {
            "project": project.slug,
            "version": "1.0.0",
            "all_adjudicated": True,
            "seed": 3,
            "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25},
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    vid = resp.json()["id"]
    assert resp.json()["frozen"] is False and resp.json()["cases"] == 8
    bad = api.post(f"/api/v1/dataset-versions/{vid}/freeze/", {"confirm": "9.9.9"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_version"
    ok = api.post(f"/api/v1/dataset-versions/{vid}/freeze/", {"confirm": "1.0.0"}, format="json")
    assert ok.status_code == 200 and ok.json()["frozen"] is True
    listed = api.get(f"/api/v1/dataset-versions/?project={project.slug}").json()["results"]
    assert [v["version"] for v in listed] == ["1.0.0"]
    log = api.get(f"/api/v1/dataset-versions/{vid}/changelog/").json()
    splits = api.get(f"/api/v1/dataset-versions/{vid}/splits/").json()
    assert splits["patient_leaks"] == []
    test = next(s for s in splits["splits"] if s["split"] == "test")
    assert test["hidden"] is True and "cases" not in test
    visible = {s["split"]: s["cases"] for s in splits["splits"] if not s["hidden"]}
    hidden_codes = set(
        DatasetVersion.objects.get(pk=vid)
        .cases.filter(split="test")
        .values_list("case_code", flat=True)
    )
    assert hidden_codes, "the draw put no case in the sequestered split"
    assert sum(visible.values()) == 8 - len(hidden_codes)
    # no list, changelog or case page names a sequestered case
    cases = api.get(f"/api/v1/dataset-versions/{vid}/cases/").json()["results"]
    assert {c["case_code"] for c in cases}.isdisjoint(hidden_codes)
    assert set(log["cases_added"]).isdisjoint(hidden_codes)
    assert api.get(f"/api/v1/dataset-versions/{vid}/cases/?split=test").status_code == 404


@pytest.mark.django_db
def test_the_sequestered_split_needs_the_dedicated_permission(
    small, project, manager, session_client_for
):
    version = services.freeze(
        services.create_draft(
            project,
            version="1.0.0",
            by=manager,
            all_adjudicated=True,
            ratios={"train": 0.5, "validation": 0.25, "test": 0.25},
        ),
        by=manager,
    )
    _grant_sequestered(manager)
    api = session_client_for(manager)
    test_cases = api.get(f"/api/v1/dataset-versions/{version.pk}/cases/?split=test").json()
    assert {c["case_code"] for c in test_cases["results"]} == set(
        version.cases.filter(split="test").values_list("case_code", flat=True)
    )
    page = Client()
    page.force_login(manager)
    html = page.get(f"/projects/{project.slug}/versions/1.0.0/?split=test").content.decode()
    assert all(
        code in html
        for code in version.cases.filter(split="test").values_list("case_code", flat=True)
    )


@pytest.mark.django_db
def test_outsiders_readers_and_arbitrators_see_no_version(
    small, project, manager, reader_a, arbitrator, outsider, session_client_for
):
    version = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    for user in (reader_a, arbitrator, outsider):
        api = session_client_for(user)
        assert api.get("/api/v1/dataset-versions/").json()["results"] == []
        for tail in ("", "cases/", "splits/", "changelog/"):
            assert api.get(f"/api/v1/dataset-versions/{version.pk}/{tail}").status_code == 404
        post = api.post(
            f"/api/v1/dataset-versions/{version.pk}/freeze/", {"confirm": "1.0.0"}, format="json"
        )
        assert post.status_code == 404
        created = api.post(
            "/api/v1/dataset-versions/",
            {"project": project.slug, "version": "2.0.0", "all_adjudicated": True},
            format="json",
        )
        assert created.status_code == 404
    web = Client()
    web.force_login(outsider)
    assert web.get(f"/projects/{project.slug}/versions/").status_code == 404
    assert web.get(f"/projects/{project.slug}/versions/1.0.0/").status_code == 404
    web.force_login(reader_a)
    assert web.get(f"/projects/{project.slug}/versions/1.0.0/").status_code == 403
    version.refresh_from_db()
    assert not version.frozen


@pytest.mark.django_db
def test_manager_drafts_and_freezes_from_the_pages(small, project, manager):
    web = Client()
    assert web.login(username=manager.username, password=factories.PASSWORD)
    page = web.get(f"/projects/{project.slug}/versions/")
    assert page.status_code == 200 and b"1.0.0" in page.content
    # the selection by manufacturer names its group; no case has a site: no site group
    html = page.content.decode()
    group = html.split('data-testid="filter-manufacturers"')[1].split("</div>")[0]
    assert 'name="manufacturer" value="SIEMENS"' in group
    assert 'data-testid="filter-sites"' not in html
    resp = web.post(
        f"/projects/{project.slug}/versions/",
        {
            "version": "1.0.0",
            "selection": "list",
            "codes": "S00\nS01\nS02\nS03",
            "ratio_train": "100",
            "ratio_validation": "0",
            "ratio_test": "0",
            "seed": "1",
        },
    )
    assert resp.status_code == 302
    detail = web.get(resp["Location"]).content.decode()
    assert "S03" in detail and "S04" not in detail and 'data-testid="freeze-panel"' in detail
    unconfirmed = web.post(f"/projects/{project.slug}/versions/1.0.0/freeze/", {"confirm": "1.0.0"})
    assert unconfirmed.status_code == 302
    assert not DatasetVersion.objects.get(version="1.0.0").frozen
    wrong = web.post(
        f"/projects/{project.slug}/versions/1.0.0/freeze/", {"confirm": "1.0", "understood": "1"}
    )
    assert wrong.status_code == 400 and b"1.0.0" in wrong.content
    done = web.post(
        f"/projects/{project.slug}/versions/1.0.0/freeze/", {"confirm": "1.0.0", "understood": "1"}
    )
    assert done.status_code == 302
    version = DatasetVersion.objects.get(version="1.0.0")
    assert version.frozen and version.cases.filter(split="train").count() == 4
    frozen_page = web.get(f"/projects/{project.slug}/versions/1.0.0/").content.decode()
    assert version.content_sha256 in frozen_page and 'data-testid="freeze-panel"' not in frozen_page


@pytest.mark.django_db
def test_freeze_version_command(small, project, manager, tmp_path):
    listing = tmp_path / "cases.txt"
    listing.write_text("# first version\nS00\nS01\n\nS02\n")
    out = io.StringIO()
    call_command(
        "freeze_version",
        "--project",
        project.slug,
        "--version",
        "1.0.0",
        "--cases",
        str(listing),
        "--by",
        manager.username,
        stdout=out,
    )
    v1 = DatasetVersion.objects.get(version="1.0.0")
    assert v1.frozen and sorted(v1.cases.values_list("case_code", flat=True)) == [
        "S00",
        "S01",
        "S02",
    ]
    assert v1.content_sha256 in out.getvalue()
    listing.write_text("S00\nS01\nS03\n")
    with pytest.raises(CommandError, match="reason"):
        call_command(
            "freeze_version",
            "--project",
            project.slug,
            "--version",
            "1.1.0",
            "--cases",
            str(listing),
            "--parent",
            "1.0.0",
            "--by",
            manager.username,
        )
    call_command(
        "freeze_version",
        "--project",
        project.slug,
        "--version",
        "1.1.0",
        "--cases",
        str(listing),
        "--parent",
        "1.0.0",
        "--retire-reason",
        "duplicate series",
        "--by",
        manager.username,
        stdout=io.StringIO(),
    )
    v2 = DatasetVersion.objects.get(version="1.1.0")
    assert v2.parent == v1
    assert v2.changelog["cases_added"] == ["S03"]
    assert v2.changelog["cases_retired"] == [["S02", "duplicate series"]]
    with pytest.raises(CommandError):
        call_command(
            "freeze_version",
            "--project",
            project.slug,
            "--version",
            "1.1.0",
            "--all-adjudicated",
            "--by",
            manager.username,
        )


@pytest.mark.django_db
def test_package_input_is_built_from_the_snapshot(small, project, manager):
    version = services.freeze(
        services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True),
        by=manager,
    )
    first = build_package_input(version)
    # the live project moves on; the package input does not
    project.protocol.match_threshold = 9.0
    project.protocol.save()
    second = build_package_input(version)
    assert first == second
    assert first.dataset_id == project.slug and first.version == "1.0.0"
    assert first.protocol["match_threshold"] == 5.0
    assert len(first.cases) == 8 and len(first.reads) == 24
    positives = [c for c in first.cases if c.case_label == "positive"]
    assert len(first.reference) == len(positives) == 4
    ref = first.reference[0]
    assert ref.decision == "auto-consensus" and len(ref.reader_ids) == 3
    assert all(r.reader_pseudo_id.startswith("RD") for r in first.reads)
    assert {c.split for c in first.cases} <= {"train", "validation", "test"}
    assert first.changelog.cases_added == tuple(sorted(c.case_id for c in first.cases))
    assert first.cases[0].series[0].instances[0].sha256
    names = {manager.username, "reader_a", "reader_b", "reader_c"}
    assert not any(n in repr(first) for n in names)
