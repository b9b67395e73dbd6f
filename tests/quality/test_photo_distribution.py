"""The QC distribution of a photograph project (OP): by site, camera make and
model (the manifest's camera column, stored as Manufacturer /
ManufacturerModelName), resolution (rows x columns) and eye (OD/OS, from the
laterality the import records on each image's row; from the stored header only
for rows imported before it recorded the view), on the QC page and in its CSV,
for a manager logged in through the login form."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client

from annotation_server.accounts.models import Role, Site
from annotation_server.imaging import storage
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import Instance
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role
from annotation_server.quality.services import check_case
from fixtures import fundus
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _delivery(folder: Path, photos: list[tuple]) -> None:
    folder.mkdir(parents=True)
    rows = ["filename,patient_id,visit_id,laterality,camera"]
    for i, (pid, lat, size, camera) in enumerate(photos):
        rgb, truth = fundus.build_fundus(70 + i, laterality=lat, size=size, grade=0)
        (folder / f"{i}.png").write_bytes(fundus.encode_photo(rgb, truth, "png"))
        rows.append(f"{i}.png,{pid},{pid}-V1,{lat},{camera}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")


def _photo_project(manager, tmp_path, slug="fundus-qc"):
    project = factories.ProjectFactory(slug=slug, modality="OP")
    grant_role(project, manager, Role.MANAGER)
    s01 = Site.objects.get_or_create(code="S01", defaults={"name": "East"})[0]
    s02 = Site.objects.get_or_create(code="S02", defaults={"name": "North"})[0]
    _delivery(
        tmp_path / "a",
        [("PAT-1", "OD", 256, "Topcon TRC-NW400"), ("PAT-1", "OS", 256, "Topcon TRC-NW400")],
    )
    _delivery(tmp_path / "b", [("PAT-2", "OD", 192, "Canon CR-2")])
    for folder, site in (("a", s01), ("b", s02)):
        report = ingest(
            project,
            from_paths([tmp_path / folder], Limits()),
            site=site,
            source="test",
            run_qc=False,
            prebuild_streams=False,
        )
        assert report.summary()["imported"] >= 1, [(f.name, f.reason) for f in report.files]
    for case in Case.objects.filter(project=project):
        check_case(case)
    return project


def _eye_table(manager, project) -> str:
    web = Client()
    assert web.login(username=manager.username, password=factories.PASSWORD)
    page = web.get(f"/projects/{project.slug}/qc/")
    assert page.status_code == 200
    return page.content.decode().split('data-dimension="laterality"')[1].split("</table>")[0]


def test_photo_project_distribution_page_and_csv(manager, tmp_path):
    project = _photo_project(manager, tmp_path)
    web = Client()
    assert web.login(username=manager.username, password=factories.PASSWORD)
    page = web.get(f"/projects/{project.slug}/qc/")
    assert page.status_code == 200
    html = page.content.decode()
    for key in ("site", "manufacturer", "model", "resolution", "laterality"):
        assert f'data-dimension="{key}"' in html
    for key in ("thickness", "kvp", "kernel"):  # CT's dimensions are not shown
        assert f'data-dimension="{key}"' not in html
    tables = {
        key: html.split(f'data-dimension="{key}"')[1].split("</table>")[0]
        for key in ("laterality", "resolution")
    }
    assert '<td>OD</td><td class="num">2</td>' in tables["laterality"]
    assert '<td>OS</td><td class="num">1</td>' in tables["laterality"]
    assert '<td>256×256</td><td class="num">2</td>' in tables["resolution"]

    download = web.get(f"/projects/{project.slug}/qc/distribution.csv")
    assert download.status_code == 200
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0] == ["dimension", "value", "cases", "percent"]
    got = {(d, v): (int(n), int(p)) for d, v, n, p in rows[1:]}
    assert got == {
        ("site", "S01"): (2, 67),
        ("site", "S02"): (1, 33),
        ("manufacturer", "Topcon"): (2, 67),
        ("manufacturer", "Canon"): (1, 33),
        ("model", "TRC-NW400"): (2, 67),
        ("model", "CR-2"): (1, 33),
        ("resolution", "256×256"): (2, 67),
        ("resolution", "192×192"): (1, 33),
        ("laterality", "OD"): (2, 67),
        ("laterality", "OS"): (1, 33),
    }


def test_the_eye_comes_from_the_row_without_reading_the_file(manager, tmp_path, monkeypatch):
    project = _photo_project(manager, tmp_path, slug="fundus-qc-rows")
    rows = Instance.objects.filter(series__study__project=project)
    assert sorted(rows.values_list("laterality", flat=True)) == ["L", "R", "R"]

    def no_read(key, count):
        raise AssertionError(f"the QC page read {key}")

    monkeypatch.setattr(storage, "head", no_read)
    table = _eye_table(manager, project)
    assert '<td>OD</td><td class="num">2</td>' in table
    assert '<td>OS</td><td class="num">1</td>' in table
    # the row, not the file, is what is counted: one row said otherwise
    rows.filter(laterality="L").update(laterality="R")
    assert '<td>OD</td><td class="num">3</td>' in _eye_table(manager, project)


def test_a_row_imported_before_views_were_recorded_reads_its_header(manager, tmp_path, monkeypatch):
    project = _photo_project(manager, tmp_path, slug="fundus-qc-old")
    rows = Instance.objects.filter(series__study__project=project)
    gone = rows.filter(laterality="R").order_by("id").first().file  # a right eye's file
    rows.update(laterality="", view_position=None)  # as imaging 0008 left them
    cache.clear()
    table = _eye_table(manager, project)
    assert '<td>OD</td><td class="num">2</td>' in table
    assert '<td>OS</td><td class="num">1</td>' in table
    # a file that cannot be read counts as unknown; the page still answers
    cache.clear()
    real_head = storage.head

    def head(key, count):
        if key == gone:
            raise FileNotFoundError(key)
        return real_head(key, count)

    monkeypatch.setattr(storage, "head", head)
    counts = dict(
        re.findall(r'<tr><td>([^<]*)</td><td class="num">(\d+)</td>', _eye_table(manager, project))
    )
    unknown = {k: v for k, v in counts.items() if k not in ("OD", "OS")}
    assert counts["OD"] == "1" and counts["OS"] == "1" and list(unknown.values()) == ["1"]
    monkeypatch.setattr(storage, "head", real_head)
    # recorded as "no view" (view_position ""): the row says the header names no eye
    rows.update(view_position="")
    table = _eye_table(manager, project)
    assert "OD" not in table and "OS" not in table
    assert '<td class="num">3</td>' in table  # all three "unknown" (未知)


def test_the_qc_page_is_the_managers(manager, reader_a):
    project = factories.ProjectFactory(slug="fundus-qc-2", modality="OP")
    grant_role(project, manager, Role.MANAGER)
    grant_role(project, reader_a, Role.READER)
    web = Client()
    assert web.login(username=reader_a.username, password=factories.PASSWORD)
    assert web.get(f"/projects/{project.slug}/qc/distribution.csv").status_code in (403, 404)
