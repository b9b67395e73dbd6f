"""A quarantined image is served by no delivery path: pixel API, series stream,
rendered PNG (the thumbnails), DICOMweb (QIDO-RS, WADO-RS instance, metadata,
rendered, frames), for the manager and for a reader of the case alike. Only the
quarantine reviewer's own page shows it. Its redacted copy is served like any image."""

from __future__ import annotations

import pytest

from annotation_server.imaging import pixels
from annotation_server.imaging.models import Instance, Quarantine, Series
from annotation_server.projects.models import Case
from tests import factories
from tests.imaging.test_quarantine_redaction import _truth_box, import_folder, write_burned_ct

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(project, manager, reader_a, tmp_path):
    truth = write_burned_ct(tmp_path / "ct")
    import_folder(project, tmp_path / "ct", manager)
    item = Quarantine.objects.get(project=project)
    series = Series.objects.get(study__project=project)
    case = Case.objects.get(series=series)
    factories.TaskFactory(case=case, reader=reader_a)
    return item, series, truth


def _wado(series: Series, sop_uid: str) -> list[str]:
    base = (
        f"/dicomweb/studies/{series.study.study_uid}/series/{series.series_uid}/instances/{sop_uid}"
    )
    return [base, f"{base}/metadata", f"{base}/rendered", f"{base}/frames/1"]


def _stream(client, series: Series) -> list[dict]:
    response = client.get(f"/api/v1/series/{series.pk}/pixels/")
    assert response.status_code == 200
    return [header for header, _ in pixels.iter_records(b"".join(response.streaming_content))]


def test_every_delivery_path_answers_404_for_a_quarantined_instance(
    held, project, manager, reader_a, session_client_for
):
    item, series, _ = held
    for user in (manager, reader_a):
        client = session_client_for(user)
        for url in _wado(series, item.sop_instance_uid):
            response = client.get(url)
            assert response.status_code == 404, (user.username, url, response.status_code)
        qido = client.get(
            f"/dicomweb/studies/{series.study.study_uid}/series/{series.series_uid}/instances"
        )
        assert qido.status_code == 200
        assert item.sop_instance_uid not in qido.content.decode()
        assert len(qido.json()) == 3
        stream = _stream(client, series)
        assert len(stream) == 3 and all(h["count"] == 3 for h in stream)
        listed = client.get(f"/api/v1/instances/?series={series.pk}").json()
        rows = listed["results"] if isinstance(listed, dict) else listed
        assert item.sop_instance_uid not in str(rows)
        detail = client.get(f"/api/v1/series/{series.pk}/").json()
        assert item.sop_instance_uid not in str(detail)
        for instance in Instance.objects.filter(series=series):
            png = client.get(f"/api/v1/instances/{instance.pk}/rendered.png/?size=64")
            assert png.status_code == 200  # the served thumbnails are the clean slices
    assert not Instance.objects.filter(sha256=item.sha256).exists()
    own = session_client_for(manager).get(
        f"/projects/{project.slug}/quarantine/{item.pk}/image.png"
    )
    assert own.status_code == 200 and own["Content-Type"] == "image/png"
    reader = session_client_for(reader_a).get(
        f"/projects/{project.slug}/quarantine/{item.pk}/image.png"
    )
    assert reader.status_code == 404


def test_after_redaction_the_copy_is_served_and_the_original_still_is_not(
    held, project, manager, reader_a, session_client_for
):
    item, series, truth = held
    client = session_client_for(manager)
    url = f"/api/v1/projects/{project.slug}/quarantine/{item.pk}/redact/"
    assert client.post(url, {"boxes": _truth_box(truth)}, format="json").status_code == 200
    item.refresh_from_db()
    reader = session_client_for(reader_a)
    for url in _wado(series, item.sop_instance_uid):
        assert reader.get(url).status_code == 404, url
        assert client.get(url).status_code == 404, url
    for url in _wado(series, item.redacted_sop_instance_uid):
        assert reader.get(url).status_code == 200, url
    stream = _stream(reader, series)
    assert len(stream) == 4
