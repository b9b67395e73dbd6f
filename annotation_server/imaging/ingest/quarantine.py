"""A manager's review of quarantined instances: release into the project or reject."""

from __future__ import annotations

import io

import pydicom
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from annotation_server.audit import services as audit
from annotation_server.imaging import services as imaging
from annotation_server.imaging.models import Instance, Quarantine
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import MANAGE, has_project_perm


def _check(user, item: Quarantine, note: str) -> None:
    if not has_project_perm(user, item.project, MANAGE):
        raise PermissionDenied("Only the project's dataset managers review quarantine.")
    if item.status != Quarantine.Status.PENDING:
        raise ValueError(f"{item} was already {item.get_status_display()}.")
    if not note.strip():
        raise ValueError("Say what you checked (e.g. 'no burned-in text on review').")


@transaction.atomic
def release(item: Quarantine, user, note: str) -> Instance:
    """Admit a reviewed instance: index it (and open a case for a new series)."""
    _check(user, item, note)
    with default_storage.open(item.file, "rb") as fh:
        data = fh.read()
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    entry = imaging.StoredEntry(header, item.sha256, item.file, len(data))
    report = imaging.index_entries(item.project, [entry])
    for series in report.new_series:
        n = Case.objects.filter(project=item.project).count() + 1
        Case.objects.create(
            project=item.project,
            series=series,
            site=series.study.site,
            code=f"Q-{n:05d}",
            state=Case.State.IMPORTED,
        )
    Quarantine.objects.filter(pk=item.pk).update(
        status=Quarantine.Status.RELEASED,
        reviewed_by=user,
        reviewed_at=timezone.now(),
        review_note=note,
    )
    audit.record(
        "imaging.quarantine_released",
        actor=user,
        obj=item,
        project_id=item.project_id,
        data={"note": note, "reason": item.reason},
    )
    return Instance.objects.filter(sha256=item.sha256).first()


@transaction.atomic
def reject(item: Quarantine, user, note: str) -> None:
    """Refuse an instance; its file is deleted unless something else uses it."""
    _check(user, item, note)
    Quarantine.objects.filter(pk=item.pk).update(
        status=Quarantine.Status.REJECTED,
        reviewed_by=user,
        reviewed_at=timezone.now(),
        review_note=note,
    )
    if not Instance.objects.filter(sha256=item.sha256).exists():
        transaction.on_commit(lambda: default_storage.delete(item.file))
    audit.record(
        "imaging.quarantine_rejected",
        actor=user,
        obj=item,
        project_id=item.project_id,
        data={"note": note, "reason": item.reason},
    )
