"""The series panel's server side: the series of a case's study and their
thumbnails, asked for as the browser does (a session from a real login).

The rule (imaging/querysets.py): whoever may see a case may look at the other
image series of its study, read-only; nothing of another study, no non-image
series, nothing held in quarantine, nothing about anyone's reads."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.test import Client
from PIL import Image

import fixtures
from annotation_server.imaging import storage
from annotation_server.imaging.models import Instance, Quarantine
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import ReadingTask
from tests import factories

pytestmark = pytest.mark.django_db

ROW_KEYS = {
    "id",
    "series_uid",
    "modality",
    "description",
    "body_part",
    "view_position",
    "laterality",
    "images",
    "rows",
    "columns",
    "slice_thickness_mm",
    "slice_spacing_mm",
    "current",
    "thumbnail",
}


def login(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=factories.PASSWORD)
    return client


@pytest.fixture
def study(project, reader_a, reader_b):
    """One CT study of four series: the 1.25 mm series read as case C1 (reader_a),
    a 5 mm reconstruction that is no case, a 2.5 mm reconstruction read as case
    C2 by reader_b only, and a SEG. Beside it, another study read by reader_a."""
    thin, thick, mid = fixtures.build_ct_study(
        slices=8, seed=41, matrix=64, reconstructions=(5.0, 2.5)
    )
    series = {}
    for name, (datasets, _truth) in zip(("thin", "thick", "mid"), (thin, thick, mid), strict=True):
        series[name] = index_datasets(project, datasets).series[0]
    the_study = series["thin"].study
    assert {s.study_id for s in series.values()} == {the_study.pk}
    series["seg"] = factories.SeriesFactory(study=the_study, modality="SEG")
    case = Case.objects.create(
        project=project, code="C1", series=series["thin"], state="reading", qc_status="pass"
    )
    other_case = Case.objects.create(
        project=project, code="C2", series=series["mid"], state="reading", qc_status="pass"
    )
    task = ReadingTask.objects.create(case=case, reader=reader_a)
    ReadingTask.objects.create(case=other_case, reader=reader_b)
    elsewhere_ds, _ = fixtures.build_ct_datasets(slices=3, seed=42, matrix=64)
    elsewhere = index_datasets(project, elsewhere_ds).series[0]
    elsewhere_case = Case.objects.create(
        project=project, code="C3", series=elsewhere, state="reading", qc_status="pass"
    )
    ReadingTask.objects.create(case=elsewhere_case, reader=reader_a)
    return {"case": case, "task": task, "elsewhere": elsewhere, **series}


def listing(client, case):
    return client.get(f"/api/v1/cases/{case.pk}/series/")


def test_reader_lists_the_image_series_of_the_case_study(study, reader_a):
    response = listing(login(reader_a), study["case"])
    assert response.status_code == 200, response.content
    data = response.json()
    rows = {row["id"]: row for row in data["series"]}
    # the case's series, the reconstruction that is no case, the one that is
    # another reader's case; not the SEG, not the other study
    assert set(rows) == {study["thin"].pk, study["thick"].pk, study["mid"].pk}
    assert data["series"][0]["id"] == study["thin"].pk == data["current"]
    assert [r["current"] for r in data["series"]] == [True, False, False]
    for row in data["series"]:
        assert set(row) == ROW_KEYS  # nothing about cases, tasks or reads
        assert row["modality"] == "CT"
        assert (row["view_position"], row["laterality"]) == ("", "")  # a CT's header: neither
        assert row["thumbnail"].startswith(f"/api/v1/series/{row['id']}/thumbnail.png?v=")
    assert rows[study["thin"].pk]["images"] == 8
    assert rows[study["thick"].pk]["images"] == 2  # 8 x 1.25 mm = 10 mm in 5 mm slices
    assert rows[study["thick"].pk]["slice_thickness_mm"] == 5.0
    assert rows[study["thick"].pk]["slice_spacing_mm"] == 5.0
    assert rows[study["thin"].pk]["slice_thickness_mm"] == 1.25
    assert rows[study["thick"].pk]["description"] == "Chest 5mm mediastinum"
    assert "C2" not in response.content.decode()  # the other case's code: not here


def test_reader_may_stream_the_reference_series_but_nothing_else(study, reader_a):
    client = login(reader_a)
    thick = client.get(f"/api/v1/series/{study['thick'].pk}/pixels/")
    assert thick.status_code == 200
    assert thick["X-Refset-Frames"] == "2"
    assert client.get(f"/api/v1/series/{study['mid'].pk}/").status_code == 200
    assert client.get(f"/api/v1/series/{study['seg'].pk}/").status_code == 404
    assert client.get(f"/api/v1/series/{study['seg'].pk}/thumbnail.png").status_code == 404


def test_reader_not_assigned_to_the_case_gets_404(study, reader_c, outsider):
    for user in (reader_c, outsider):
        client = login(user)
        assert listing(client, study["case"]).status_code == 404
        assert client.get(f"/api/v1/series/{study['thick'].pk}/thumbnail.png").status_code == 404
        assert client.get(f"/api/v1/series/{study['thick'].pk}/pixels/").status_code == 404
        page = client.get(f"/read/{study['task'].pk}/series/{study['thick'].pk}/")
        assert page.status_code == 404


def test_anonymous_is_refused(study):
    assert listing(Client(), study["case"]).status_code == 403
    assert Client().get(f"/api/v1/series/{study['thick'].pk}/thumbnail.png").status_code == 403


def test_other_study_is_not_listed_and_not_a_reference(study, reader_a, reader_b):
    # reader_b reads C2 (the 2.5 mm series): the study's series, never reader_a's other study
    data = listing(login(reader_b), study["mid"].cases.get()).json()
    assert {r["id"] for r in data["series"]} == {
        study["thin"].pk,
        study["thick"].pk,
        study["mid"].pk,
    }
    assert data["current"] == study["mid"].pk
    client = login(reader_b)
    assert client.get(f"/api/v1/series/{study['elsewhere'].pk}/thumbnail.png").status_code == 404
    # reader_a's C1 page never opens a series of another study as a reference
    page = login(reader_a).get(f"/read/{study['task'].pk}/series/{study['elsewhere'].pk}/")
    assert page.status_code == 404


def test_arbitrator_sees_the_series_once_the_case_reaches_arbitration(study, arbitrator):
    client = login(arbitrator)
    assert listing(client, study["case"]).status_code == 404
    Case.objects.filter(pk=study["case"].pk).update(state="arbitration")
    response = listing(client, study["case"])
    assert response.status_code == 200
    assert len(response.json()["series"]) == 3


def test_thumbnail_is_a_small_png_of_the_middle_slice_cached(study, reader_a):
    client = login(reader_a)
    rows = {r["id"]: r for r in listing(client, study["case"]).json()["series"]}
    url = rows[study["thin"].pk]["thumbnail"]
    first = client.get(url)
    assert first.status_code == 200, first.content
    assert first["Content-Type"] == "image/png"
    assert first["X-Refset-Thumbnail"] == "built"
    assert "immutable" in first["Cache-Control"] and "private" in first["Cache-Control"]
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "PNG" and image.mode == "L"
    assert image.size == (64, 64)  # a 64-pixel matrix is never enlarged
    assert len(np.unique(np.asarray(image))) > 16  # windowed anatomy, not a flat square
    small = client.get(f"/api/v1/series/{study['thin'].pk}/thumbnail.png?size=32")
    assert Image.open(io.BytesIO(small.content)).size == (32, 32)
    assert len(small.content) < 4096
    # built once: the second fetch comes from storage, the same bytes
    again = client.get(url)
    assert again["X-Refset-Thumbnail"] == "stored" and again.content == first.content
    # the browser revalidates by ETag; without the version token it must
    unversioned = client.get(f"/api/v1/series/{study['thin'].pk}/thumbnail.png")
    assert unversioned["Cache-Control"] == "private, no-cache"
    assert unversioned["ETag"] == first["ETag"]
    not_modified = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    assert not_modified.status_code == 304 and not_modified.content == b""
    # the middle slice: it matches instance 4 of 8 rendered alone
    middle = study["thin"].instances.order_by("slice_index")[4]
    rendered = client.get(f"/api/v1/instances/{middle.pk}/rendered.png/?size=128")
    assert rendered.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(rendered.content))), np.asarray(image))


def test_thumbnail_bad_size_missing_and_undecodable_pixels_are_clear_errors(study, reader_a):
    client = login(reader_a)
    thick = study["thick"].pk
    for size in ("9000", "31", "abc", "²", "1e3", "-64"):
        bad = client.get(f"/api/v1/series/{thick}/thumbnail.png", {"size": size})
        assert bad.status_code == 400 and bad.json()["code"] == "bad_size", size
    huge = "9" * 40
    assert client.get(f"/api/v1/series/{huge}/thumbnail.png").status_code == 404
    assert client.get(f"/api/v1/cases/{huge}/series/").status_code == 404
    # a series of the study with no image at all
    empty = factories.SeriesFactory(study=study["thin"].study, modality="CT")
    response = client.get(f"/api/v1/series/{empty.pk}/thumbnail.png")
    assert response.status_code == 404 and response.json()["code"] == "empty"
    rows = {r["id"]: r for r in listing(client, study["case"]).json()["series"]}
    assert rows[empty.pk]["thumbnail"] is None and rows[empty.pk]["images"] == 0
    # a series whose file is gone from storage, and one whose file is no DICOM
    for name, key in (("gone", "instances/00/missing"), ("junk", storage.put(b"not dicom")[1])):
        broken = factories.SeriesFactory(study=study["thin"].study, modality="CT")
        Instance.objects.create(
            series=broken,
            sop_instance_uid=f"2.25.{len(name)}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            rows=64,
            columns=64,
            sha256="0" * 64 if name == "gone" else storage.put(b"not dicom")[0],
            file=key,
        )
        response = client.get(f"/api/v1/series/{broken.pk}/thumbnail.png")
        assert response.status_code == 422, (name, response.content)
        assert response["Content-Type"].startswith("application/json")
        assert json.loads(response.content)["detail"], name


def test_quarantined_instance_is_never_counted_nor_shown(study, reader_a, project):
    client = login(reader_a)
    before = {r["id"]: r for r in listing(client, study["case"]).json()["series"]}
    thin = study["thin"]
    middle = thin.instances.order_by("slice_index")[4]
    # the middle slice's content is held for review (a row that should not exist:
    # ingest indexes no held file; the panel still never shows it)
    Quarantine.objects.create(
        project=project,
        reason="burned-in text",
        sop_instance_uid=middle.sop_instance_uid,
        series_uid=thin.series_uid,
        sha256=middle.sha256,
        file=middle.file,
    )
    after = {r["id"]: r for r in listing(client, study["case"]).json()["series"]}
    assert after[thin.pk]["images"] == before[thin.pk]["images"] - 1 == 7
    assert after[thin.pk]["thumbnail"] != before[thin.pk]["thumbnail"]
    shown = client.get(after[thin.pk]["thumbnail"])
    held = client.get(f"/api/v1/instances/{middle.pk}/rendered.png/?size=128")
    assert shown.status_code == 200 and shown.content != held.content
    # released: shown again
    Quarantine.objects.filter(sha256=middle.sha256).update(status=Quarantine.Status.RELEASED)
    again = {r["id"]: r for r in listing(client, study["case"]).json()["series"]}
    assert again[thin.pk]["images"] == 8
    assert again[thin.pk]["thumbnail"] == before[thin.pk]["thumbnail"]


def test_reference_page_is_read_only_and_marked(study, reader_a):
    client = login(reader_a)
    task, thick = study["task"], study["thick"]
    page = client.get(f"/read/{task.pk}/series/{thick.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "参考序列，非阅片序列" in html  # the page speaks the default language, zh-Hans
    assert f'href="/read/{task.pk}/"' in html  # one click back to the case's series
    boot = json.loads(html.split('id="sv-bootstrap" type="application/json">')[1].split("<")[0])
    assert boot["series"]["id"] == thick.pk and boot["writable"] is False
    assert boot["task"] is None and len(boot["series"]["instances"]) == 2
    # the case's own series is the workstation itself
    own = client.get(f"/read/{task.pk}/series/{study['thin'].pk}/")
    assert own.status_code == 302 and own["Location"] == f"/read/{task.pk}/"
    assert client.get(f"/read/{task.pk}/series/{study['seg'].pk}/").status_code == 404


def test_workstation_has_the_panel_slot(study, reader_a):
    html = login(reader_a).get(f"/read/{study['task'].pk}/").content.decode()
    assert 'id="ws-series"' in html
    assert f'data-case="{study["case"].pk}"' in html
    assert f'data-reference-url="/read/{study["task"].pk}/series/0/"' in html
    assert "refset/viewer/seriespanel.js" in html
