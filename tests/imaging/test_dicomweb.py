"""DICOMweb (QIDO-RS, WADO-RS) against a live server with dicomweb-client."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client import DICOMwebClient
from requests.exceptions import HTTPError

import fixtures
from annotation_server.imaging.dicomweb import multipart
from annotation_server.imaging.models import Study
from annotation_server.imaging.services import index_datasets
from tests import factories
from tests.imaging.test_pixels import REAL_FILES

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def web_client(live_server, user=None, prefix: str = "") -> DICOMwebClient:
    session = requests.Session()
    if user is not None:
        session.auth = (user.username, factories.PASSWORD)
    return DICOMwebClient(url=f"{live_server.url}/dicomweb{prefix}", session=session)


@pytest.fixture
def data(project, reader_a):
    """A 5-slice CT with a case read by reader_a, a radiograph without a case, and a
    real multi-frame file (10 frames, JPEG 2000 lossless)."""
    ct, _ = fixtures.build_ct_datasets(slices=5, seed=1)
    ct_series = index_datasets(project, ct).series[0]
    case = factories.CaseFactory(project=project, series=ct_series)
    factories.TaskFactory(case=case, reader=reader_a)
    xr, _ = fixtures.build_xr_dataset(seed=1, size=256, photometric="MONOCHROME1")
    xr_series = index_datasets(project, [xr]).series[0]
    path = next(p for p in REAL_FILES if p.name == "emri_small_jpeg_2k_lossless.dcm")
    mf = pydicom.dcmread(path)
    mf.StudyInstanceUID, mf.SeriesInstanceUID = pydicom.uid.generate_uid(), mf.SeriesInstanceUID
    mf_series = index_datasets(project, [mf]).series[0]
    return {"ct": (ct_series, ct), "xr": (xr_series, xr), "mf": (mf_series, mf, path)}


def _uid(item: dict, tag: str) -> str:
    return item[tag]["Value"][0]


def test_manager_searches_studies_series_and_instances(live_server, manager, data):
    client = web_client(live_server, manager)
    ct_series, ct = data["ct"]
    studies = client.search_for_studies()
    assert len(studies) == 3
    found = client.search_for_studies(search_filters={"StudyInstanceUID": ct[0].StudyInstanceUID})
    assert [_uid(s, "0020000D") for s in found] == [ct[0].StudyInstanceUID]
    assert found[0]["00201208"]["Value"] == [5] and found[0]["00080061"]["Value"] == ["CT"]
    assert len(client.search_for_studies(search_filters={"Modality": "CT"})) == 1
    patient = str(ct[0].PatientID)
    same_patient = Study.objects.filter(patient_pseudo_id=patient).count()
    assert len(client.search_for_studies(search_filters={"PatientID": patient})) == same_patient
    assert client.search_for_studies(search_filters={"PatientID": "nobody"}) == []
    assert len(client.search_for_studies(search_filters={"PatientID": patient[:3] + "*"})) >= 1
    assert len(client.search_for_studies(limit=2)) == 2
    assert len(client.search_for_studies(offset=2)) == 1

    series = client.search_for_series(ct[0].StudyInstanceUID)
    assert [_uid(s, "0020000E") for s in series] == [ct_series.series_uid]
    assert len(client.search_for_series()) == 3
    assert len(client.search_for_series(search_filters={"Modality": "CT"})) == 1

    instances = client.search_for_instances(ct[0].StudyInstanceUID, ct_series.series_uid)
    assert sorted(_uid(i, "00080018") for i in instances) == sorted(
        str(ds.SOPInstanceUID) for ds in ct
    )
    assert len(client.search_for_instances(limit=3)) == 3
    one = client.search_for_instances(search_filters={"SOPInstanceUID": str(ct[2].SOPInstanceUID)})
    assert len(one) == 1 and one[0]["00280010"]["Value"] == [int(ct[2].Rows)]


def test_retrieve_instance_metadata_and_frames(live_server, manager, data):
    client = web_client(live_server, manager)
    ct_series, ct = data["ct"]
    ds = ct[1]
    study, series, sop = str(ds.StudyInstanceUID), ct_series.series_uid, str(ds.SOPInstanceUID)
    got = client.retrieve_instance(study, series, sop)
    assert str(got.SOPInstanceUID) == sop
    assert np.array_equal(got.pixel_array, ds.pixel_array)

    metadata = client.retrieve_series_metadata(study, series)
    assert len(metadata) == 5 and all("7FE00010" not in m for m in metadata)
    assert {m["00080018"]["Value"][0] for m in metadata} == {str(d.SOPInstanceUID) for d in ct}

    (frame,) = client.retrieve_instance_frames(study, series, sop, frame_numbers=[1])
    raw = np.frombuffer(frame, dtype="<i2" if ds.PixelRepresentation else "<u2")
    assert np.array_equal(raw.reshape(ds.Rows, ds.Columns), ds.pixel_array)


def test_multiframe_frames_are_uncompressed_little_endian(live_server, manager, data):
    client = web_client(live_server, manager)
    _, mf, path = data["mf"]
    study, series, sop = str(mf.StudyInstanceUID), str(mf.SeriesInstanceUID), str(mf.SOPInstanceUID)
    (instance,) = client.search_for_instances(study, series)
    assert instance["00280008"]["Value"] == [10]
    frames = client.retrieve_instance_frames(study, series, sop, frame_numbers=[1, 10])
    expected = pydicom.dcmread(path).pixel_array
    for got, index in zip(frames, (0, 9), strict=True):
        arr = np.frombuffer(got, dtype="<u2").reshape(expected.shape[1:])
        assert np.array_equal(arr, expected[index])
    stored = client.retrieve_instance(study, series, sop)
    assert stored.file_meta.TransferSyntaxUID == pydicom.uid.JPEG2000Lossless
    plain = client.retrieve_instance(
        study, series, sop, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),)
    )
    assert plain.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert np.array_equal(plain.pixel_array, expected)


def test_rendered_png_and_raw_multipart(live_server, manager, data):
    ct_series, ct = data["ct"]
    session = requests.Session()
    session.auth = (manager.username, factories.PASSWORD)
    base = (
        f"{live_server.url}/dicomweb/studies/{ct[0].StudyInstanceUID}/series/"
        f"{ct_series.series_uid}/instances/{ct[0].SOPInstanceUID}"
    )
    png = session.get(f"{base}/rendered?window=40,400&viewport=64,64")
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    response = session.get(base, headers={"Accept": 'multipart/related; type="application/dicom"'})
    parts = multipart.parse(response.content, response.headers["Content-Type"])
    assert len(parts) == 1 and parts[0][0]["content-type"].startswith("application/dicom")
    refused = session.get(base, headers={"Accept": "image/jpeg"})
    assert refused.status_code == 406


def test_anonymous_gets_401(live_server, data):
    response = requests.get(f"{live_server.url}/dicomweb/studies")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    with pytest.raises(HTTPError):
        web_client(live_server).search_for_studies()


def test_outsider_sees_no_studies(live_server, outsider, data):
    client = web_client(live_server, outsider)
    assert client.search_for_studies() == []
    assert client.search_for_series() == []
    assert client.search_for_instances() == []
    ct_series, ct = data["ct"]
    with pytest.raises(HTTPError) as info:
        client.retrieve_instance(
            str(ct[0].StudyInstanceUID), ct_series.series_uid, str(ct[0].SOPInstanceUID)
        )
    assert info.value.response.status_code == 404


def test_reader_sees_only_series_of_cases_they_read(live_server, reader_a, reader_b, data):
    ct_series, ct = data["ct"]
    xr_series, xr = data["xr"]
    client = web_client(live_server, reader_a)
    studies = client.search_for_studies()
    assert [_uid(s, "0020000D") for s in studies] == [str(ct[0].StudyInstanceUID)]
    assert [_uid(s, "0020000E") for s in client.search_for_series()] == [ct_series.series_uid]
    assert len(client.search_for_instances()) == 5
    with pytest.raises(HTTPError):
        client.retrieve_series_metadata(str(xr.StudyInstanceUID), xr_series.series_uid)
    with pytest.raises(HTTPError):
        client.retrieve_instance_frames(
            str(xr.StudyInstanceUID), xr_series.series_uid, str(xr.SOPInstanceUID), [1]
        )
    other = web_client(live_server, reader_b)  # same project, no task on this case
    assert other.search_for_studies() == [] and other.search_for_series() == []
    with pytest.raises(HTTPError):
        other.retrieve_series_metadata(str(ct[0].StudyInstanceUID), ct_series.series_uid)


def test_project_prefix_filters_to_one_project(live_server, manager, data):
    assert len(web_client(live_server, manager, "/projects/lung").search_for_studies()) == 3
    other = factories.ProjectFactory(slug="other")
    from annotation_server.accounts.models import Role
    from annotation_server.projects.services import grant_role

    grant_role(other, manager, Role.MANAGER)
    assert web_client(live_server, manager, "/projects/other").search_for_studies() == []
    with pytest.raises(HTTPError) as info:
        web_client(live_server, manager, "/projects/nope").search_for_studies()
    assert info.value.response.status_code == 404


def test_frame_lists_are_bounded_and_the_frames_are_streamed(live_server, manager, data):
    """2,000 repeats of frame 1 once built a 1 GB body in memory: repeats, lists
    over the cap and frames out of range are refused before anything is read."""
    _, mf, _ = data["mf"]
    session = requests.Session()
    session.auth = (manager.username, factories.PASSWORD)
    base = (
        f"{live_server.url}/dicomweb/studies/{mf.StudyInstanceUID}/series/"
        f"{mf.SeriesInstanceUID}/instances/{mf.SOPInstanceUID}/frames/"
    )
    repeated = session.get(base + ",".join(["1"] * 2000))
    assert repeated.status_code == 400 and "at most 512 frames" in repeated.json()["detail"]
    twice = session.get(base + "1,2,1")
    assert twice.status_code == 400 and "only once" in twice.json()["detail"]
    beyond = session.get(base + "1,11")
    assert beyond.status_code == 404 and "10 frame(s)" in beyond.json()["detail"]
    ok = session.get(base + "10,1,2", stream=True)
    assert ok.status_code == 200 and "Content-Length" not in ok.headers  # streamed
    parts = multipart.parse(ok.content, ok.headers["Content-Type"])
    assert len(parts) == 3
