"""RGB photographs over the pixel API: an Ophthalmic Photography instance's pixels
(either PlanarConfiguration) arrive as interleaved RGB uint8 equal to the photo,
flagged in the header; a large one's stream starts with a reduced RGB copy."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import Client

from annotation_server.imaging import pixels
from annotation_server.imaging.services import index_datasets
from tests import factories
from tests.imaging.rgb_photos import block_photo, photo_dataset

pytestmark = pytest.mark.django_db


def _records(response) -> list:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(pixels.iter_records(body))


def _signed_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=factories.PASSWORD)
    return client


@pytest.mark.parametrize("planar", [0, 1])
def test_photo_pixels_are_interleaved_rgb_equal_to_the_photo(project, manager, planar):
    photo = block_photo(120, 160, seed=planar)
    ds = photo_dataset(photo, laterality="OS", planar=planar)
    assert int(ds.PlanarConfiguration) == planar
    series = index_datasets(project, [ds]).series[0]
    client = _signed_in(manager)

    response = client.get(f"/api/v1/instances/{series.instances.get().pk}/pixels/")
    assert response.status_code == 200
    [(header, values)] = _records(response)
    assert header["rgb"] is True and header["samples_per_pixel"] == 3
    assert header["dtype"] == "uint8" and header["photometric"] == "RGB"
    assert (header["rows"], header["columns"]) == (120, 160)
    assert header["nbytes"] == 120 * 160 * 3
    assert header["view"]["laterality"] == "L"  # OS
    assert header["default_window"] == pixels.PHOTO_WINDOW  # brightness/contrast as stored
    assert values.shape == (120, 160, 3)
    assert np.array_equal(values, photo)

    stream = _records(client.get(f"/api/v1/series/{series.pk}/pixels/"))
    assert len(stream) == 1 and np.array_equal(stream[0][1], photo)


def test_large_photo_stream_starts_with_a_reduced_rgb_copy(project, manager):
    rows, columns = 1200, 1800  # 2.16 Mpixel: over PREVIEW_MIN_PIXELS
    photo = block_photo(rows, columns, seed=3)
    series = index_datasets(project, [photo_dataset(photo, planar=1)]).series[0]
    client = _signed_in(manager)
    url = f"/api/v1/series/{series.pk}/pixels/"
    first = client.get(url)
    stream = _records(first)
    assert len(stream) == 2
    (small_header, small), (full_header, full) = stream
    k = small_header["preview"]["factor"]
    assert k >= 2 and small_header["preview"] == {"factor": k, "rows": rows, "columns": columns}
    assert small_header["rgb"] is True and small.shape == (rows // k, columns // k, 3)
    assert small.dtype == np.uint8
    # each reduced pixel the channel-wise mean of its k x k block (blocks are flat,
    # so away from the block edges it is the photo's colour itself)
    expected = photo[: rows // k * k, : columns // k * k].reshape(rows // k, k, columns // k, k, 3)
    assert np.array_equal(small, np.rint(expected.mean(axis=(1, 3))).astype(np.uint8))
    assert "preview" not in full_header and np.array_equal(full, photo)
    # cached by a strong ETag like any stream, and the stored stream is the same bytes
    etag = first["ETag"]
    assert client.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    again = _records(client.get(url))
    assert np.array_equal(again[0][1], small) and np.array_equal(again[1][1], photo)
