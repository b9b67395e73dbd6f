"""Pixel delivery over the REST API: values, headers, streaming, caching, permissions."""

from __future__ import annotations

import io
import json
import warnings
from collections import Counter

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

import fixtures
from annotation_server.imaging import pixels, storage
from annotation_server.imaging.models import Instance
from annotation_server.imaging.services import index_datasets
from tests import factories
from tests.imaging.test_pixels import REAL_FILES, assert_same_values, expected_frames

pytestmark = pytest.mark.django_db


def pixels_url(instance) -> str:
    return f"/api/v1/instances/{instance.pk}/pixels/"


def records(response) -> list[tuple[dict, np.ndarray | None]]:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(pixels.iter_records(body))


@pytest.fixture
def ct_series(project):
    datasets, _ = fixtures.build_ct_datasets(slices=5, seed=1)
    return index_datasets(project, datasets).series[0]


@pytest.fixture
def xr_series(project):
    ds, _ = fixtures.build_xr_dataset(seed=1, size=256, photometric="MONOCHROME1")
    return index_datasets(project, [ds]).series[0]


def _index_real(project, path) -> tuple[list[Instance], str]:
    """Index a real file in its own study and series: through index_datasets when it
    can, else (a file too broken to re-encode) as stored bytes with hand-made rows."""
    data = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        try:
            ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
            series = index_datasets(project, [ds]).series[0]
            return list(series.instances.order_by("frame")), "index_datasets"
        except Exception:  # noqa: BLE001 - broken on purpose (bad VR, no transfer syntax)
            pass
        digest, key, _ = storage.put(data)
        series = factories.SeriesFactory(study__project=project)
        rows = []
        for frame in range(pixels.number_of_frames(ds)):
            rows.append(
                Instance.objects.create(
                    series=series,
                    sop_instance_uid=generate_uid(),
                    sop_class_uid=str(ds.get("SOPClassUID", "1.2.3")),
                    frame=frame,
                    slice_index=frame,
                    rows=0,
                    columns=0,
                    sha256=digest,
                    file=key,
                    size_bytes=len(data),
                )
            )
        return rows, "stored as is"


def test_every_decodable_real_file_is_served_as_pydicom_decodes_it(project, manager, client_for):
    client = client_for(manager)
    outcome: Counter = Counter()
    for path in REAL_FILES:
        expected = expected_frames(path)
        if expected is None:
            outcome["no pixel data (skipped by design)"] += 1
            continue
        instances, how = _index_real(project, path)
        outcome[how] += 1
        assert instances, path.name
        for instance in instances:
            response = client.get(pixels_url(instance))
            if isinstance(expected, Exception):
                assert response.status_code == 422, path.name
                error = response.json()
                assert error["code"] == "undecodable"
                assert error["transfer_syntax"] and error["transfer_syntax"] in error["detail"]
                outcome["422 undecodable"] += 1
                break
            assert response.status_code == 200, (path.name, response.content[:200])
            assert response["Content-Type"] == pixels.MEDIA_TYPE
            ((header, values),) = records(response)
            assert header["frame"] == instance.frame
            label = f"{path.name} frame {instance.frame} ({how})"
            assert_same_values(values, header["dtype"], expected[instance.frame], label)
        else:
            outcome["decoded"] += 1
    print(dict(outcome))
    assert outcome["decoded"] >= 150 and outcome["422 undecodable"] >= 1, outcome


def test_ct_slice_header_says_geometry_dtype_and_presets(ct_series, manager, client_for):
    instance = ct_series.instances.get(slice_index=2)
    response = client_for(manager).get(pixels_url(instance))
    body = response.content
    n = int.from_bytes(body[:4], "little")
    assert (4 + n) % 8 == 0
    header = json.loads(body[4 : 4 + n])
    assert header["rows"] == instance.rows and header["columns"] == instance.columns
    assert header["dtype"] == "int16" and header["nbytes"] == instance.rows * instance.columns * 2
    assert header["slice_index"] == 2 and header["position"] == instance.position
    assert header["position_along_normal"] == pytest.approx(instance.position_along_normal)
    assert header["photometric"] == "MONOCHROME2"
    assert header["rescale"]["slope"] == instance.rescale_slope
    assert header["pixel_spacing"] == ct_series.pixel_spacing_mm
    assert {"lung", "mediastinum", "bone", "brain"} <= {
        p["name"] for p in header["window_presets"] if p["source"] == "modality"
    }
    assert len(body) >= 4 + n + header["nbytes"]


def test_series_stream_is_every_slice_in_order_equal_to_single_fetches(
    ct_series, manager, client_for
):
    client = client_for(manager)
    response = client.get(f"/api/v1/series/{ct_series.pk}/pixels/")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == pixels.MEDIA_TYPE
    stream = records(response)
    assert [h["slice_index"] for h, _ in stream] == list(range(5))
    assert all(h["count"] == 5 for h, _ in stream)
    for header, values in stream:
        single = records(client.get(f"/api/v1/instances/{header['instance']}/pixels/"))
        assert np.array_equal(single[0][1], values)
    assert response["X-Refset-Frames"] == "5"


def test_series_detail_lists_slices_with_geometry(ct_series, manager, client_for):
    data = client_for(manager).get(f"/api/v1/series/{ct_series.pk}/").json()
    assert data["pixel_spacing_mm"] == ct_series.pixel_spacing_mm
    assert data["slice_spacing_mm"] == pytest.approx(ct_series.slice_spacing_mm)
    assert [s["slice_index"] for s in data["instances"]] == list(range(5))
    assert set(data["instances"][0]) >= {"slice_index", "id", "position", "frame"}


def test_pixels_have_strong_immutable_etag_and_answer_304(ct_series, manager, client_for):
    client = client_for(manager)
    for url in (
        pixels_url(ct_series.instances.first()),
        f"/api/v1/series/{ct_series.pk}/pixels/",
        f"/api/v1/instances/{ct_series.instances.first().pk}/rendered.png/?size=64",
    ):
        first = client.get(url)
        etag = first["ETag"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert first["Cache-Control"] == "private, max-age=31536000, immutable"
        again = client.get(url, HTTP_IF_NONE_MATCH=etag)
        assert again.status_code == 304 and again["ETag"] == etag
        assert client.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    png = pixels_url(ct_series.instances.first()).replace("pixels/", "rendered.png/")
    assert client.get(png + "?wc=40&ww=400")["ETag"] != client.get(png + "?wc=-600&ww=1500")["ETag"]


def test_rendered_png_is_a_thumbnail_keeping_aspect(xr_series, manager, client_for):
    instance = xr_series.instances.get()
    client = client_for(manager)
    response = client.get(f"/api/v1/instances/{instance.pk}/rendered.png/?size=64")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert max(image.size) == 64
    ratio = instance.columns / instance.rows
    assert image.size[0] / image.size[1] == pytest.approx(ratio, rel=0.05)
    full = client.get(f"/api/v1/instances/{instance.pk}/rendered.png/?wc=2000&ww=4000")
    assert Image.open(io.BytesIO(full.content)).size == (instance.columns, instance.rows)
    bad = client.get(f"/api/v1/instances/{instance.pk}/rendered.png/?ww=-3")
    assert bad.status_code == 400


def test_monochrome1_header_says_invert(xr_series, manager, client_for):
    ((header, values),) = records(client_for(manager).get(pixels_url(xr_series.instances.get())))
    assert header["photometric"] == "MONOCHROME1" and header["invert"] is True
    assert values.shape == (header["rows"], header["columns"])


def test_outsider_and_readers_without_a_task_get_nothing(
    ct_series, project, reader_a, reader_b, outsider, client_for
):
    case = factories.CaseFactory(project=project, series=ct_series)
    factories.TaskFactory(case=case, reader=reader_a)
    instance = ct_series.instances.first()
    urls = [
        pixels_url(instance),
        f"/api/v1/series/{ct_series.pk}/pixels/",
        f"/api/v1/instances/{instance.pk}/rendered.png/",
        f"/api/v1/series/{ct_series.pk}/",
    ]
    for url in urls:
        assert client_for(reader_a).get(url).status_code == 200, url
        assert client_for(reader_b).get(url).status_code == 404, url
        assert client_for(outsider).get(url).status_code == 404, url
    assert client_for(outsider).get("/api/v1/studies/").json()["count"] == 0
    assert client_for(reader_b).get("/api/v1/series/").json()["count"] == 0
    assert client_for(reader_a).get("/api/v1/series/").json()["count"] == 1


def test_a_manager_sees_pixels_of_managed_projects_only(ct_series, project, manager, client_for):
    from annotation_server.accounts.models import Role
    from annotation_server.projects.services import grant_role

    other_manager = factories.UserFactory()
    grant_role(factories.ProjectFactory(slug="other", name="Other"), other_manager, Role.MANAGER)
    instance = ct_series.instances.first()
    urls = [pixels_url(instance), f"/api/v1/series/{ct_series.pk}/pixels/"]
    for url in urls + ["/api/v1/series/abc/pixels/", "/api/v1/instances/0/pixels/"]:
        assert client_for(other_manager).get(url).status_code == 404, url
    for url in urls:
        assert client_for(manager).get(url).status_code == 200, url


def test_anonymous_is_refused(ct_series, client):
    assert client.get(pixels_url(ct_series.instances.first())).status_code in (401, 403)


def test_series_stream_is_stored_once_built_and_served_from_storage(
    ct_series, manager, client_for, settings
):
    from pathlib import Path

    client = client_for(manager)
    url = f"/api/v1/series/{ct_series.pk}/pixels/"
    first = client.get(url)
    assert first["X-Refset-Stream"] == "built"
    built = b"".join(first.streaming_content)
    stored = list((Path(settings.MEDIA_ROOT) / "derived" / "series-streams").rglob("*.rsp"))
    assert len(stored) == 1 and stored[0].read_bytes() == built
    second = client.get(url)
    assert second["X-Refset-Stream"] == "stored"
    assert b"".join(second.streaming_content) == built
    assert second["ETag"] == first["ETag"]


def test_an_interrupted_build_stores_nothing(ct_series, manager, client_for, settings):
    from pathlib import Path

    response = client_for(manager).get(f"/api/v1/series/{ct_series.pk}/pixels/")
    stream = iter(response.streaming_content)
    next(stream)  # the client reads one record and goes away
    response.close()
    assert not list((Path(settings.MEDIA_ROOT) / "derived").rglob("*.rsp"))


def test_import_queues_a_job_that_prebuilds_the_stream(
    project, manager, client_for, tmp_path, django_capture_on_commit_callbacks
):
    from annotation_server.imaging.ingest.pipeline import ingest
    from annotation_server.imaging.ingest.sources import Limits, from_paths
    from annotation_server.jobs import services as jobs
    from annotation_server.jobs.models import Job

    fixtures.generate_ct(tmp_path / "ct", slices=3, seed=41, matrix=64)
    (tmp_path / "ct" / "truth.json").unlink()
    with django_capture_on_commit_callbacks(execute=False):
        ingest(project, from_paths([tmp_path / "ct"], Limits()), source="test")
    job = Job.objects.get(kind="imaging.build_series_streams")
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert job.result == {"built": 1, "series": 1}
    series_id = job.params["series_ids"][0]
    response = client_for(manager).get(f"/api/v1/series/{series_id}/pixels/")
    assert response["X-Refset-Stream"] == "stored"
