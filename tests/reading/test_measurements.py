"""A contour saved through the findings API is measured on the server (long and
short axis, volume, HU inside) and the measurements come back with the finding."""

from __future__ import annotations

import time

import pytest

import fixtures
from annotation_server.imaging.services import index_datasets
from annotation_server.reading.measurements import measure_finding, spacing_of
from annotation_server.reading.models import Finding
from qc.measurements import measure
from tests import factories
from tests.qc.test_measurements import nodule_geometry

pytestmark = pytest.mark.django_db

CT = {"slices": 30, "seed": 2, "matrix": 512, "nodules": 1}  # one solid nodule, 0.7 mm pixels


@pytest.fixture(scope="module")
def ct():
    return fixtures.build_ct_datasets(**CT)


@pytest.fixture
def ct_task(ct, project, reader_a):
    datasets, truth = ct
    series = index_datasets(project, datasets).series[0]
    case = factories.CaseFactory(project=project, series=series)
    return factories.TaskFactory(case=case, reader=reader_a), truth


def _post(client, task, geometry, **attributes):
    return client.post(
        "/api/v1/findings/",
        {
            "task": task.pk,
            "finding_type": "nodule",
            "geometry": geometry,
            "attributes": {"nodule_type": "solid", **attributes},
        },
        format="json",
    )


def test_a_saved_contour_carries_its_measurements_with_units(ct_task, reader_a, session_client_for):
    task, truth = ct_task
    (nodule,) = truth["nodules"]
    geometry = nodule_geometry(truth, nodule)
    client = session_client_for(reader_a)

    started = time.perf_counter()
    response = _post(client, task, geometry)
    took = time.perf_counter() - started
    assert response.status_code == 201, response.json()
    m = response.json()["measurements"]
    timings = {"save (first request)": took}
    for name, call in (
        ("save again", lambda: _post(client, task, geometry)),
        ("measure_finding", lambda: measure_finding(task.case.series, geometry)),
        ("geometry only", lambda: measure(geometry, spacing_of(task.case.series))),
    ):
        started = time.perf_counter()
        call()
        timings[name] = time.perf_counter() - started
    print({k: f"{v * 1000:.0f} ms" for k, v in timings.items()}, len(geometry["shapes"]), "slices")

    assert m["units"] == {"length": "mm", "area": "mm²", "volume": "mm³", "hu": "HU"}
    assert abs(m["long_axis"] - nodule["diameter_mm"]) <= 1.0
    assert abs(m["short_axis"] - nodule["diameter_mm"]) <= 1.0
    assert m["axes_from"] == "contour" and m["slices"] == len(geometry["shapes"])
    assert m["volume"] == pytest.approx(3.14159 / 6 * nodule["diameter_mm"] ** 3, rel=0.12)
    assert nodule["centre_hu"] - 200 < m["hu_mean"] < nodule["centre_hu"] + 15
    assert m["hu_max"] >= nodule["centre_hu"] and m["hu_voxels"] > 100
    # The workstation's list and one finding answer the same.
    url = f"/api/v1/findings/{response.json()['id']}/"
    assert client.get(url).json()["measurements"] == m
    listed = client.get(f"/api/v1/findings/?task={task.pk}").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert rows[0]["measurements"] == m


def test_measurements_follow_the_outline_and_the_readers_axes(
    ct_task, reader_a, session_client_for
):
    task, truth = ct_task
    (nodule,) = truth["nodules"]
    k = nodule["centre_voxel"][2]
    whole = nodule_geometry(truth, nodule)
    one = {"kind": "contour", "shapes": [s for s in whole["shapes"] if s["slice_index"] == k]}
    client = session_client_for(reader_a)
    created = _post(client, task, one).json()
    url = f"/api/v1/findings/{created['id']}/"
    first = created["measurements"]
    assert first["slices"] == 1 and first["slice_index"] == k

    # Attributes only: the stored measurements stay (nothing is read again).
    stored = Finding.objects.get(pk=created["id"])
    Finding.objects.filter(pk=stored.pk).update(measurements={**first, "marker": 1})
    same = client.patch(
        url, {"attributes": {"nodule_type": "solid", "malignancy": 2}, "version": 1}, format="json"
    ).json()
    assert same["measurements"]["marker"] == 1

    # A new outline is measured again; axes drawn by the reader override the contour's.
    col, row = nodule["centre_voxel"][:2]
    axes = {"slice_index": k, "long": [[col - 10, row], [col + 10, row]], "short": None}
    changed = client.patch(
        url, {"geometry": {**whole, "axes": axes}, "version": same["version"]}, format="json"
    ).json()
    m = changed["measurements"]
    assert "marker" not in m and m["slices"] == len(whole["shapes"])
    assert m["axes_from"] == "reader" and m["long_axis"] == pytest.approx(20 * 0.7)
    assert abs(m["contour_long_axis"] - nodule["diameter_mm"]) <= 1.0


def test_marks_without_area_or_pixels_still_save(project, reader_a, session_client_for):
    task = factories.TaskFactory(case=factories.CaseFactory(project=project), reader=reader_a)
    client = session_client_for(reader_a)
    point = _post(client, task, factories.nodule_geometry(kind="point")).json()
    assert point["measurements"] is None
    # A series with no files and no spacing: lengths in pixels, no HU, no volume.
    ellipse = _post(client, task, factories.nodule_geometry(kind="ellipse")).json()
    m = ellipse["measurements"]
    assert m["units"] == {"length": "px", "area": "px²", "volume": None}
    assert m["long_axis"] == 10.0 and "hu_mean" not in m
