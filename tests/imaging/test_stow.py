"""STOW-RS through dicomweb-client: stored instances, failures with reasons; bodies
of any size read as a stream, chunked (gunicorn) or not (runserver, live_server);
Basic or session authentication; then QIDO and WADO of what was stored."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from django.db import connection
from django.test import Client

import fixtures
from annotation_server.imaging.dicomweb import multipart
from annotation_server.imaging.models import Instance
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

ROOT = Path(__file__).resolve().parents[2]
STOW = "/dicomweb/projects/lung/studies"
TWO_AND_A_HALF_MB = 2_621_440  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE


def _client(live_server, user, path="dicomweb/projects/lung", language="en"):
    session = requests.Session()
    session.auth = (user.username, factories.PASSWORD)
    # Reasons come in the client's language (the server's default, zh-Hans, without one).
    if language:
        session.headers["Accept-Language"] = language
    return DICOMwebClient(url=f"{live_server.url}/{path}", session=session)


def test_manager_stores_a_series_and_gets_the_store_response(live_server, project, manager):
    datasets, truth = fixtures.build_ct_datasets(slices=3, seed=12, matrix=64)
    response = _client(live_server, manager).store_instances(datasets)
    stored = response.ReferencedSOPSequence
    assert len(stored) == 3
    new_uids = {str(item.ReferencedSOPInstanceUID) for item in stored}
    assert new_uids == set(Instance.objects.values_list("sop_instance_uid", flat=True))
    assert not new_uids & {str(ds.SOPInstanceUID) for ds in datasets}  # de-identified


def test_bad_part_is_listed_as_failed_and_the_rest_stored(live_server, project, manager):
    datasets, _ = fixtures.build_ct_datasets(slices=2, seed=13, matrix=64)
    broken = pydicom.Dataset()
    broken.PatientName = "NOT^AN^IMAGE"
    broken.file_meta = pydicom.dataset.FileMetaDataset()
    broken.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    broken.file_meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    broken.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID
    broken.SOPClassUID = broken.file_meta.MediaStorageSOPClassUID
    result = _client(live_server, manager).store_instances([*datasets, broken])
    assert len(result.ReferencedSOPSequence) == 2
    assert len(result.FailedSOPSequence) == 1
    failed = result.FailedSOPSequence[0]
    assert failed.FailureReason == 0x0110
    assert "missing required" in failed[0x00000902].value
    assert Instance.objects.count() == 2
    # a client that names no language is answered in the server's, zh-Hans
    broken.SOPInstanceUID = broken.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    result = _client(live_server, manager, language="").store_instances([datasets[0], broken])
    assert "缺少必需属性" in result.FailedSOPSequence[0][0x00000902].value


def test_reader_cannot_store(live_server, project, reader_a):
    datasets, _ = fixtures.build_ct_datasets(slices=1, seed=14, matrix=64)
    with pytest.raises(requests.HTTPError) as err:
        _client(live_server, reader_a).store_instances(datasets)
    assert err.value.response.status_code == 403
    assert not Instance.objects.exists()


# -- helpers for the streamed-body tests ------------------------------------------------


def _study(seed: int, slices: int = 6):
    """A 512x512 CT series whose STOW body is over 2.5 MB (Django's in-memory cap)."""
    datasets, _ = fixtures.build_ct_datasets(slices=slices, seed=seed, matrix=512)
    assert sum(len(fixtures.dataset_bytes(ds)) for ds in datasets) > TWO_AND_A_HALF_MB
    return datasets


def _pixels(ds) -> str:
    return hashlib.sha256(ds.pixel_array.tobytes()).hexdigest()


def _body(datasets) -> tuple[bytes, str]:
    boundary = multipart.new_boundary()
    parts = [("application/dicom", fixtures.dataset_bytes(ds)) for ds in datasets]
    body = b"".join(multipart.iter_body(parts, boundary))
    return body, multipart.content_type("application/dicom", boundary)


def _store_search_retrieve(client: DICOMwebClient, datasets) -> None:
    """STOW the series, find it with QIDO, fetch every instance with WADO: the same
    pixels, de-identified."""
    response = client.store_instances(datasets)
    assert not getattr(response, "FailedSOPSequence", None), response
    stored = {str(item.ReferencedSOPInstanceUID) for item in response.ReferencedSOPSequence}
    assert len(stored) == len(datasets)
    found = [
        item for item in client.search_for_instances() if item["00080018"]["Value"][0] in stored
    ]
    assert len(found) == len(datasets)
    study_uids = {item["0020000D"]["Value"][0] for item in found}
    assert len(study_uids) == 1 and study_uids.isdisjoint({datasets[0].StudyInstanceUID})
    (study_uid,) = study_uids
    series = client.search_for_series(study_uid)
    assert len(series) == 1 and series[0]["00201209"]["Value"] == [len(datasets)]
    retrieved = [
        client.retrieve_instance(
            study_uid, item["0020000E"]["Value"][0], item["00080018"]["Value"][0]
        )
        for item in found
    ]
    assert sorted(_pixels(ds) for ds in retrieved) == sorted(_pixels(ds) for ds in datasets)
    assert all(ds.PatientIdentityRemoved == "YES" for ds in retrieved)
    assert {str(ds.PatientID) for ds in retrieved}.isdisjoint({str(datasets[0].PatientID)})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn_server(settings, app: str = "annotation_server.wsgi:application"):
    """A real gunicorn (sync worker) serving `app` on a free loopback port, on this
    test's database and media folder, stopped in the end."""
    db = connection.settings_dict
    port = _free_port()
    env = dict(
        os.environ,
        DATABASE_URL=f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REFSET_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        # follow-up jobs of the import go to a queue no worker reads
        REFSET_CELERY_QUEUE=f"refset-test-{uuid.uuid4().hex[:8]}",
    )
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", "1", "--timeout", "120", app]
    proc = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "gunicorn exited"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "gunicorn did not listen within 60 s"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _session_of(user) -> requests.Session:
    """A requests session logged in as `user` (a Django session in the shared
    database) that sends its CSRF token, as the browser's JavaScript does."""
    django_client = Client()
    django_client.force_login(user)
    session = requests.Session()
    session.cookies.set("sessionid", django_client.cookies["sessionid"].value)
    token = secrets.token_hex(16)
    session.cookies.set("csrftoken", token)
    session.headers["X-CSRFToken"] = token
    return session


# -- the tests ---------------------------------------------------------------------------


def test_a_study_over_2_5_mb_is_stored_searched_and_retrieved_on_live_server(
    live_server, project, manager
):
    """Django's test server (like runserver) cannot read a chunked body: the client
    sends this one whole, with a Content-Length. request.body refused it (over 2.5 MB)."""
    client = _client(live_server, manager)
    client.set_chunk_size(64 * 1024 * 1024)  # one request body with a Content-Length
    _store_search_retrieve(client, _study(seed=21))


@pytest.mark.parametrize(
    "app",
    [
        "annotation_server.wsgi:application",  # as deployed (web/chunked.py spools it)
        "django.core.wsgi:get_wsgi_application()",  # STOW reads the decoded input itself
    ],
    ids=["refset-wsgi", "plain-django"],
)
def test_a_chunked_stow_through_gunicorn_with_session_auth_is_stored_and_retrievable(
    project, manager, settings, app
):
    """dicomweb-client sends bodies over its chunk size (1 MB) chunked; gunicorn
    passes them through decoded (wsgi.input_terminated). Once: 415 'no parts'."""
    datasets = _study(seed=22)
    with gunicorn_server(settings, app) as url:
        client = DICOMwebClient(url=f"{url}/dicomweb/projects/lung", session=_session_of(manager))
        assert client._chunk_size < TWO_AND_A_HALF_MB  # the body goes chunked
        _store_search_retrieve(client, datasets)
    assert Instance.objects.filter(series__study__project=project).count() == len(datasets)


def test_a_chunked_body_the_server_does_not_decode_gets_411_not_a_parse_error(project, manager):
    body, content_type = _body(fixtures.build_ct_datasets(slices=2, seed=23, matrix=64)[0])
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(manager)
    chunked = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked"}
    response = client.post(STOW, body, content_type=content_type, **chunked)
    assert response.status_code == 411, response.content
    assert "chunked" in response.json()["detail"]
    # where the server decodes it (gunicorn: wsgi.input_terminated), it is read to the end
    decoded = {**chunked, "wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True}
    response = client.post(STOW, body, content_type=content_type, **decoded)
    assert response.status_code == 200, response.content
    assert len(response.json()["00081199"]["Value"]) == 2


def test_session_login_stores_with_its_csrf_token(project, manager):
    """Through the login form, CSRF enforced as in a browser (DRF answered 415)."""
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    login = {"username": manager.username, "password": factories.PASSWORD}
    response = client.post("/login/", {**login, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    token = client.cookies["csrftoken"].value  # rotated at login
    body, content_type = _body(fixtures.build_ct_datasets(slices=2, seed=24, matrix=64)[0])
    refused = client.post(STOW, body, content_type=content_type)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert not Instance.objects.exists()
    response = client.post(STOW, body, content_type=content_type, HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200, response.content
    assert Instance.objects.count() == 2


def test_store_answers_a_client_that_accepts_dicom_json(project, manager):
    """PS3.18: the store response is application/dicom+json (DRF answered 406)."""
    body, content_type = _body(fixtures.build_ct_datasets(slices=1, seed=25, matrix=64)[0])
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(manager)
    response = client.post(
        STOW, body, content_type=content_type, HTTP_ACCEPT="application/dicom+json"
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/dicom+json"
    stored = pydicom.Dataset.from_json(response.json()).ReferencedSOPSequence
    assert len(stored) == 1


def test_parts_past_the_import_limit_are_failed_with_the_limit_named(project, manager, settings):
    """Each part counts against REFSET_IMPORT_MAX_TOTAL_MB; what does not fit is a
    failed instance naming the setting, and what fits is stored."""
    settings.REFSET_IMPORT_MAX_TOTAL_MB = 1
    datasets, _ = fixtures.build_ct_datasets(slices=3, seed=26, matrix=512)  # ~0.5 MB each
    body, content_type = _body(datasets)
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(manager)
    response = client.post(STOW, body, content_type=content_type)
    assert response.status_code == 202, response.content
    result = pydicom.Dataset.from_json(response.json())
    assert len(result.ReferencedSOPSequence) == 1
    assert len(result.FailedSOPSequence) == 2
    for failed in result.FailedSOPSequence:
        assert "REFSET_IMPORT_MAX_TOTAL_MB" in failed[0x00000902].value
    assert Instance.objects.count() == 1


def test_a_part_over_the_file_limit_is_failed_with_the_limit_named(project, manager, settings):
    settings.REFSET_MAX_FILE_MB = 1
    small, _ = fixtures.build_ct_datasets(slices=1, seed=27, matrix=64)
    large, _ = fixtures.build_ct_datasets(slices=1, seed=28, matrix=1024)  # 2 MB
    body, content_type = _body([*small, *large])
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(manager)
    response = client.post(STOW, body, content_type=content_type)
    assert response.status_code == 202, response.content
    (failed,) = pydicom.Dataset.from_json(response.json()).FailedSOPSequence
    assert "2 MB exceeds the 1 MB file limit (REFSET_MAX_FILE_MB)" in failed[0x00000902].value
    assert Instance.objects.count() == 1


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096])
def test_the_streamed_reader_finds_every_part_whatever_the_chunk_size(chunk):
    payloads = [b"", b"\r\n--not-the-boundary\r\n", os.urandom(3000), b"tail\r\n-"]
    boundary = multipart.new_boundary()
    body = b"preamble\r\n" + b"".join(
        multipart.iter_body([("application/dicom", p) for p in payloads], boundary)
    )
    body += b"epilogue"
    header = f'multipart/related; type="application/dicom"; boundary="{boundary}"'
    parts, stream = [], io.BytesIO(body)
    for event, value in multipart.read_parts(stream.read, header, chunk_size=chunk):
        if event == "part":
            parts.append([value, b""])
        elif event == "data":
            parts[-1][1] += value
    assert [p for _, p in parts] == payloads
    assert all(h == {"content-type": "application/dicom"} for h, _ in parts)
    with pytest.raises(multipart.MultipartError, match="no parts"):
        list(multipart.read_parts(io.BytesIO(b"nothing").read, header))
    with pytest.raises(multipart.MultipartError, match="ends inside a part"):
        list(multipart.read_parts(io.BytesIO(body[: len(body) // 2]).read, header))
