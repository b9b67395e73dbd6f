"""The manifest's site column: checked against the project's sites (a row naming
another site is refused on its own line, naming the site and the project's
sites, with its photograph), a visit's rows agree on one site, and after the
import each visit's study and case get the site its rows name (by code, any case,
or by institution name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotation_server.accounts.models import Role, Site
from annotation_server.imaging.deid import Deidentifier
from annotation_server.imaging.ingest import keys, photos
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Candidate, Limits, Rejection, from_paths
from annotation_server.imaging.models import Study
from annotation_server.imaging.photo.manifest import parse_manifest_partial
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role
from fixtures import fundus
from tests import factories

pytestmark = pytest.mark.django_db

HEADER = "filename,patient_id,visit_id,laterality,site\n"


@pytest.fixture
def sites(db):
    return {
        code: Site.objects.get_or_create(code=code, defaults={"name": name})[0]
        for code, name in (("S01", "East Hospital"), ("S02", "North Hospital"), ("S09", "Other"))
    }


@pytest.fixture
def fundus_project(manager, sites):
    project = factories.ProjectFactory(slug="fundus-sites", modality="OP")
    project.sites.add(sites["S01"], sites["S02"])  # S09 exists but is not the project's
    grant_role(project, manager, Role.MANAGER)
    return project


def _delivery(folder: Path) -> None:
    rows = [
        # patient 1's visit at S01 (code in lower case), both eyes
        ("p1-od.png", "PAT-1", "V-1", "OD", "s01"),
        ("p1-os.png", "PAT-1", "V-1", "OS", ""),
        # patient 2's visit at North Hospital (by name)
        ("p2-od.png", "PAT-2", "V-2", "OD", "North Hospital"),
        # line 5: a site that is not the project's
        ("p3-od.png", "PAT-3", "V-3", "OD", "S09"),
    ]
    for i, (name, *_rest) in enumerate(rows):
        rgb, truth = fundus.build_fundus(30 + i, laterality=rows[i][3], size=192, grade=0)
        (folder / name).write_bytes(fundus.encode_photo(rgb, truth, "png"))
    (folder / "manifest.csv").write_text(HEADER + "".join(",".join(r) + "\n" for r in rows))


def test_a_visit_naming_two_sites_is_a_manifest_problem():
    rows, problems, refused = parse_manifest_partial(
        HEADER + "a.png,P1,V1,OD,S01\nb.png,P1,V1,OS,S02\nc.png,P1,V1,OS,s01\n"
    )
    assert [r.line for r in rows] == [2, 4]
    assert [(p.line, p.column) for p in problems] == [(3, "site")]
    assert "'S01' on line 2" in problems[0].problem
    assert refused == {"b.png": 3}


def test_an_unknown_site_is_refused_on_its_line_with_its_photograph(fundus_project, tmp_path):
    _delivery(tmp_path)
    items = photos.attach(list(from_paths([tmp_path], Limits())), fundus_project)
    refusals = {r.name: r.reason for r in items if isinstance(r, Rejection)}
    assert refusals["manifest line 5, column site"] == (
        "unknown site 'S09': not one of this project's sites (S01, S02)"
    )
    # its photograph is refused by its line; the other three go on
    assert "its manifest line has problems" in refusals["photo, manifest line 5"]
    kept = [c for c in items if isinstance(c, Candidate)]
    assert sorted(c.photo_row.line for c in kept) == [2, 3, 4]
    # without the project (no sites to check against) the row is not refused
    unchecked = photos.attach(list(from_paths([tmp_path], Limits())))
    assert not any(isinstance(r, Rejection) for r in unchecked)


def test_a_project_without_sites_says_so(manager, tmp_path):
    project = factories.ProjectFactory(slug="no-sites", modality="OP")
    _delivery(tmp_path)
    items = photos.attach(list(from_paths([tmp_path], Limits())), project)
    reasons = [r.reason for r in items if isinstance(r, Rejection) and "column site" in r.name]
    assert len(reasons) == 3 and all("this project lists no sites" in r for r in reasons)


def test_the_import_refuses_the_unknown_site_and_gives_each_visit_its_site(
    fundus_project, sites, tmp_path
):
    _delivery(tmp_path)
    report = ingest(fundus_project, from_paths([tmp_path], Limits()), source="test")
    results = {f.name: (f.status, f.reason) for f in report.files}
    assert report.summary()["imported"] == 3, results
    assert results["manifest line 5, column site"] == (
        "rejected",
        "unknown site 'S09': not one of this project's sites (S01, S02)",
    )
    deid = Deidentifier(keys.project_secret(fundus_project))
    by_pseudonym = {s.patient_pseudo_id: s.site.code for s in Study.objects.select_related("site")}
    assert by_pseudonym == {deid.pseudonym("PAT-1"): "S01", deid.pseudonym("PAT-2"): "S02"}
    cases = Case.objects.filter(project=fundus_project).select_related("site", "series__study")
    assert sorted(c.site.code for c in cases) == ["S01", "S01", "S02"]
    assert all(c.site_id == c.series.study.site_id for c in cases)
