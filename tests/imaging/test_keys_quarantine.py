"""The identity key store and the quarantine review."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

import fixtures
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.ingest import quarantine
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import IdentityMapping, Instance, ProjectKey, Quarantine
from annotation_server.projects.models import Case

pytestmark = pytest.mark.django_db


def _import(project, path):
    return ingest(project, from_paths([path], Limits()), source="test")


def test_originals_are_encrypted_and_revealed_only_with_permission(
    project, manager, client_for, tmp_path
):
    truth = fixtures.generate_xr(tmp_path, seed=8, size=128)
    (tmp_path / "truth.json").unlink()
    _import(project, tmp_path)
    original_id = truth["phi"]["attributes"]["PatientID"]
    mapping = IdentityMapping.objects.get(project=project, kind="patient_id")
    assert original_id not in mapping.original_encrypted
    assert original_id not in ProjectKey.objects.get(project=project).secret_encrypted
    url = f"/api/v1/projects/{project.slug}/identity/reveal/"
    body = {"replacement": mapping.replacement, "reason": "patient asked to withdraw"}
    assert client_for(manager).post(url, body, format="json").status_code == 403
    manager.user_permissions.add(Permission.objects.get(codename="view_identity_key"))
    manager = type(manager).objects.get(pk=manager.pk)  # drop the permission cache
    response = client_for(manager).post(url, body, format="json")
    assert response.status_code == 200, response.json()
    originals = {r["kind"]: r["original"] for r in response.json()["originals"]}
    assert originals["patient_id"] == original_id
    assert originals["patient_name"] == truth["phi"]["attributes"]["PatientName"].split("=")[0]
    event = AuditEvent.objects.filter(action="identity.revealed").last()
    assert AuditEvent.objects.filter(action="identity.revealed").count() == 2  # id and name
    assert event.actor_id == manager.pk and event.data["reason"] == "patient asked to withdraw"
    missing = client_for(manager).post(url, {"replacement": mapping.replacement}, format="json")
    assert missing.status_code == 400


def test_quarantined_image_is_released_by_a_manager_with_a_note(
    project, manager, reader_a, tmp_path
):
    fixtures.generate_xr(tmp_path, seed=9, size=128, defect="burned-in-text")
    (tmp_path / "truth.json").unlink()
    _import(project, tmp_path)
    item = Quarantine.objects.get(project=project)
    with pytest.raises(Exception, match="dataset managers"):
        quarantine.release(item, reader_a, "looks fine")
    with pytest.raises(ValueError, match="Say what you checked"):
        quarantine.release(item, manager, "  ")
    instance = quarantine.release(item, manager, "text is outside the anatomy; cropped later")
    assert instance is not None and instance.sha256 == item.sha256
    assert Case.objects.filter(project=project, series=instance.series).exists()
    item.refresh_from_db()
    assert item.status == "released" and item.reviewed_by == manager
    with pytest.raises(ValueError, match="already"):
        quarantine.reject(item, manager, "changed my mind")
    assert AuditEvent.objects.filter(action="imaging.quarantine_released").exists()


def test_rejected_quarantine_deletes_its_file(
    project, manager, tmp_path, settings, django_capture_on_commit_callbacks
):
    from pathlib import Path

    fixtures.generate_xr(tmp_path, seed=10, size=128, defect="burned-in-text")
    (tmp_path / "truth.json").unlink()
    _import(project, tmp_path)
    item = Quarantine.objects.get(project=project)
    stored = Path(settings.MEDIA_ROOT) / item.file
    assert stored.exists()
    with django_capture_on_commit_callbacks(execute=True):
        quarantine.reject(item, manager, "name visible in the corner")
    assert not stored.exists()
    assert not Instance.objects.exists()
