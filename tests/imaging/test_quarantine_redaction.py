"""Burned-in text at ingest (header flag or OCR) goes to quarantine; the project's
dataset manager reviews it in the browser: redacts (a new de-identified instance),
releases with a reason, or rejects (the file is deleted). Every step is audited,
and everyone else gets 404."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage

import fixtures
from annotation_server.accounts.models import Role
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.deid import Deidentifier, pixel_text
from annotation_server.imaging.ingest import keys
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import Instance, Quarantine, Series
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role
from tests import factories

pytestmark = pytest.mark.django_db


def _english(client):
    """The messages these tests read are the English ones (a client without
    Accept-Language is answered in the default language, zh-Hans)."""
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def write_burned_ct(folder: Path, *, header_flag: bool = False, slices: int = 4) -> dict:
    """A CT series with patient details burned into one slice; its header says NO
    unless `header_flag` (so only the OCR can catch it)."""
    datasets, truth = fixtures.build_ct_datasets(slices=slices, seed=1, defect="burned-in-text")
    folder.mkdir(parents=True, exist_ok=True)
    for i, ds in enumerate(datasets):
        if i == truth["defect"]["slice_index"] and not header_flag:
            ds.BurnedInAnnotation = "NO"
        ds.save_as(folder / f"CT_{i:04d}.dcm", enforce_file_format=True)
    return truth["defect"]


def import_folder(project, folder: Path, user=None):
    return ingest(project, from_paths([folder], Limits()), source="test", user=user)


@pytest.fixture
def held(project, manager, tmp_path):
    """A project whose CT import held one slice back by OCR; (item, defect truth)."""
    truth = write_burned_ct(tmp_path / "ct")
    report = import_folder(project, tmp_path / "ct", manager)
    assert report.summary()["quarantined"] == 1 and report.summary()["imported"] == 3
    return Quarantine.objects.get(project=project), truth


def _truth_box(truth) -> list[dict]:
    x0, y0, x1, y1 = truth["box"]
    return [{"x": x0, "y": y0, "width": x1 - x0 + 1, "height": y1 - y0 + 1}]


# -- detection at ingest -------------------------------------------------------------


def test_ocr_holds_back_a_slice_whose_header_says_no_burned_in_text(held, project):
    item, truth = held
    assert item.reason.startswith("burned-in text found by OCR")
    assert item.status == "pending" and item.modality == "CT"
    assert item.text_boxes and item.text_boxes[0]["region"] == "top"
    series = Series.objects.get(study__project=project)
    assert series.num_instances == 3
    assert not Instance.objects.filter(sop_instance_uid=item.sop_instance_uid).exists()
    assert default_storage.exists(item.file)


def test_ocr_can_be_switched_off_for_benchmarks(project, tmp_path, settings):
    settings.REFSET_BURNED_IN_OCR = False
    write_burned_ct(tmp_path / "ct")
    report = import_folder(project, tmp_path / "ct")
    assert report.summary()["quarantined"] == 0 and report.summary()["imported"] == 4


def test_header_flag_still_quarantines_and_the_review_suggests_boxes_by_ocr(
    project, manager, tmp_path, session_client_for
):
    truth = write_burned_ct(tmp_path / "ct", header_flag=True)
    import_folder(project, tmp_path / "ct")
    item = Quarantine.objects.get(project=project)
    assert item.reason == "BurnedInAnnotation is YES" and item.text_boxes is None
    page = _english(session_client_for(manager)).get(
        f"/projects/{project.slug}/quarantine/{item.pk}/"
    )
    assert page.status_code == 200
    item.refresh_from_db()
    x0, y0, x1, y1 = truth["box"]
    assert any(b["x"] <= x0 + 3 and b["y"] <= y0 + 3 for b in item.text_boxes)
    assert b'"suggested": [{"x"' in page.content


# -- redaction -------------------------------------------------------------------------


def test_manager_redacts_a_new_deidentified_instance_that_goes_through_qc(
    held, project, manager, session_client_for
):
    item, truth = held
    client = _english(session_client_for(manager))
    api = f"/api/v1/projects/{project.slug}/quarantine/{item.pk}/"
    response = client.post(api + "redact/", {"boxes": _truth_box(truth)}, format="json")
    assert response.status_code == 200, response.content
    item.refresh_from_db()
    assert item.status == "redacted" and item.reviewed_by == manager
    expected_uid = Deidentifier(keys.project_secret(project)).uid(
        f"redacted:{item.sop_instance_uid}"
    )
    assert item.redacted_sop_instance_uid == expected_uid != item.sop_instance_uid
    instance = Instance.objects.get(sop_instance_uid=expected_uid)
    assert response.json()["instance_id"] == instance.pk
    assert instance.series.num_instances == 4
    with default_storage.open(instance.file, "rb") as fh:
        ds = pydicom.dcmread(io.BytesIO(fh.read()))
    assert ds.SOPInstanceUID == expected_uid == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.BurnedInAnnotation == "NO"
    assert "Clean Pixel Data Option" in " ".join(ds.DeidentificationMethod)
    assert "113101" in [c.CodeValue for c in ds.DeidentificationMethodCodeSequence]
    x0, y0, x1, y1 = truth["box"]
    assert np.all(ds.pixel_array[y0 : y1 + 1, x0 : x1 + 1] == ds.pixel_array.min())
    assert not pixel_text.find_text_in_dataset(ds).has_text
    # the original stays in quarantine only: stored, indexed nowhere
    assert default_storage.exists(item.file)
    assert not Instance.objects.filter(sha256=item.sha256).exists()
    case = Case.objects.get(project=project, series=instance.series)
    job = Job.objects.filter(kind="qc.check_cases").latest("pk")
    assert job.params == {"case_ids": [case.pk]} and job.created_by == manager
    event = AuditEvent.objects.get(action="imaging.quarantine_redacted")
    assert event.actor_id == manager.pk
    assert event.data["boxes"] == _truth_box(truth)
    assert event.data["redacted_sop_instance_uid"] == expected_uid
    again = client.post(api + "redact/", {"boxes": _truth_box(truth)}, format="json")
    assert again.status_code == 409 and "already" in again.json()["detail"]


def test_preview_is_the_redaction_as_written_and_stores_nothing(
    held, project, manager, session_client_for
):
    item, truth = held
    client = _english(session_client_for(manager))
    url = f"/api/v1/projects/{project.slug}/quarantine/{item.pk}/preview/"
    response = client.post(url, {"boxes": _truth_box(truth)}, format="json")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert "no-store" in response["Cache-Control"]
    from PIL import Image

    png = np.array(Image.open(io.BytesIO(response.content)))
    x0, y0, x1, y1 = truth["box"]
    assert png[y0 : y1 + 1, x0 : x1 + 1].max() == 0
    original = client.get(f"/projects/{project.slug}/quarantine/{item.pk}/image.png")
    assert np.array(Image.open(io.BytesIO(original.content)))[y0 : y1 + 1, x0 : x1 + 1].max() > 200
    item.refresh_from_db()
    assert item.status == "pending" and Instance.objects.count() == 3


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ([], "Draw at least one box"),
        ([{"x": 900, "y": 900, "width": 5, "height": 5}], "Draw at least one box"),
        ([{"x": "a", "y": 1, "width": 5, "height": 5}], "numeric"),
    ],
)
def test_redaction_refuses_boxes_that_black_out_nothing(
    held, project, manager, session_client_for, boxes, message
):
    item, _ = held
    url = f"/api/v1/projects/{project.slug}/quarantine/{item.pk}/redact/"
    response = _english(session_client_for(manager)).post(url, {"boxes": boxes}, format="json")
    assert response.status_code == 409 and message in response.json()["detail"]
    item.refresh_from_db()
    assert item.status == "pending"


def test_release_without_redaction_needs_a_reason_and_is_audited(
    held, project, manager, session_client_for
):
    item, _ = held
    client = _english(session_client_for(manager))
    url = f"/api/v1/projects/{project.slug}/quarantine/{item.pk}/release/"
    refused = client.post(url, {"note": "  "}, format="json")
    assert refused.status_code == 409 and "Say what you checked" in refused.json()["detail"]
    done = client.post(url, {"note": "only the scanner's name, no patient details"}, format="json")
    assert done.status_code == 200
    item.refresh_from_db()
    assert item.status == "released" and item.review_note.startswith("only the scanner")
    assert Instance.objects.filter(sha256=item.sha256).count() == 1
    event = AuditEvent.objects.get(action="imaging.quarantine_released")
    assert event.actor_id == manager.pk and event.data["note"].startswith("only the scanner")
    assert Job.objects.filter(kind="qc.check_cases").exists()


def test_reject_deletes_the_file_and_is_audited(
    held, project, manager, session_client_for, django_capture_on_commit_callbacks
):
    item, _ = held
    url = f"/api/v1/projects/{project.slug}/quarantine/{item.pk}/reject/"
    with django_capture_on_commit_callbacks(execute=True):
        response = _english(session_client_for(manager)).post(
            url, {"note": "name on it"}, format="json"
        )
    assert response.status_code == 200
    assert not default_storage.exists(item.file)
    item.refresh_from_db()
    assert item.status == "rejected"
    assert AuditEvent.objects.get(action="imaging.quarantine_rejected").actor_id == manager.pk
    page = _english(session_client_for(manager)).get(
        f"/projects/{project.slug}/quarantine/{item.pk}/"
    )
    assert page.status_code == 200 and b"redact-canvas" not in page.content


def test_a_series_already_in_reading_gains_no_slice(held, project, manager, session_client_for):
    item, truth = held
    Case.objects.filter(project=project).update(state=Case.State.READING)
    url = f"/api/v1/projects/{project.slug}/quarantine/{item.pk}/redact/"
    response = _english(session_client_for(manager)).post(
        url, {"boxes": _truth_box(truth)}, format="json"
    )
    assert response.status_code == 409 and "readers' marks" in response.json()["detail"]
    assert Instance.objects.count() == 3


def test_opening_the_review_page_is_audited(held, project, manager, session_client_for):
    item, _ = held
    response = _english(session_client_for(manager)).get(
        f"/projects/{project.slug}/quarantine/{item.pk}/"
    )
    assert response.status_code == 200
    assert (
        b"redact-canvas" in response.content and item.sop_instance_uid.encode() in response.content
    )
    event = AuditEvent.objects.get(action="imaging.quarantine_viewed")
    assert event.actor_id == manager.pk and event.data["sop_instance_uid"] == item.sop_instance_uid
    listing = _english(session_client_for(manager)).get(f"/projects/{project.slug}/quarantine/")
    assert listing.status_code == 200 and b'data-testid="quarantine-row"' in listing.content
    api = _english(session_client_for(manager)).get(f"/api/v1/projects/{project.slug}/quarantine/")
    assert [row["id"] for row in api.json()] == [item.pk]


# -- who may see it ---------------------------------------------------------------------


def _routes(project, item) -> list[tuple[str, str]]:
    page = f"/projects/{project.slug}/quarantine/"
    api = f"/api/v1/projects/{project.slug}/quarantine/"
    return [
        ("get", page),
        ("get", f"{page}{item.pk}/"),
        ("get", f"{page}{item.pk}/image.png"),
        ("get", api),
        ("get", f"{api}{item.pk}/"),
        ("post", f"{api}{item.pk}/preview/"),
        ("post", f"{api}{item.pk}/redact/"),
        ("post", f"{api}{item.pk}/release/"),
        ("post", f"{api}{item.pk}/reject/"),
    ]


def test_readers_arbitrators_and_other_projects_managers_get_404(
    held, project, reader_a, arbitrator, outsider, session_client_for
):
    item, truth = held
    other = factories.ProjectFactory(slug="other-proj")
    grant_role(other, outsider, Role.MANAGER)
    body = {"boxes": _truth_box(truth), "note": "trying"}
    for user in (reader_a, arbitrator, outsider):
        client = session_client_for(user)
        for method, url in _routes(project, item):
            response = getattr(client, method)(url, body, format="json")
            assert response.status_code == 404, (user.username, url, response.status_code)
    item.refresh_from_db()
    assert item.status == "pending"
    assert not AuditEvent.objects.filter(action__startswith="imaging.quarantine_").exists()


def test_anonymous_gets_nothing(held, project, client):
    item, _ = held
    for method, url in _routes(project, item):
        response = getattr(client, method)(url)
        assert response.status_code in (302, 403), url
        assert response.get("Content-Type") != "image/png"


def test_stored_reasons_are_shown_through_translatable_templates():
    from django.utils import translation

    from annotation_server.imaging.quarantine_views import reason_display

    with translation.override("en"):
        assert reason_display("burned-in text found by OCR (top, left)") == (
            "burned-in text found by OCR (top, left)"
        )
        assert reason_display("BurnedInAnnotation is YES").startswith("the header says")
        shown = reason_display("modality US (ultrasound) often carries burned-in text")
        assert shown.startswith("image type that often carries burned-in text: modality US")
        assert reason_display("something else") == "something else"
