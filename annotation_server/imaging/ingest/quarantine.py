"""A manager's review of quarantined instances (PS3.15 Clean Pixel Data).

Ingest holds back every image that may show identifying pixels (header flags, or
text found by OCR: deid/burned_in.py and deid/pixel_text.py). A held-back file is
stored but never indexed: no Instance row points to it, so no thumbnail, pixel
API, DICOMweb route, reading task or export can reach it. Only the project's
dataset managers see it, here, and every look and every decision is audited.

The review ends in one of three ways:

- ``redact``: boxes drawn by the reviewer are blacked out in a new instance (new
  SOP Instance UID derived from the quarantined one with the project's secret,
  BurnedInAnnotation NO, Clean Pixel Data Option recorded); the new instance is
  indexed and image-QC'd like any other, the original stays in quarantine only;
- ``release``: the original is admitted as it is, with a reason;
- ``reject``: the file is deleted (unless another row uses the same content).

An instance joins its series; a series whose case is already being read would
renumber its slices under the readers' marks, so that is refused.
"""

from __future__ import annotations

import io

import pydicom
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.imaging import pixels
from annotation_server.imaging import services as imaging
from annotation_server.imaging.deid import Deidentifier
from annotation_server.imaging.deid.pixel_text import find_text_in_dataset
from annotation_server.imaging.deid.redact import (
    RedactionError,
    clean_boxes,
    redact_dataset,
)
from annotation_server.imaging.ingest import keys
from annotation_server.imaging.models import Instance, Quarantine, Series
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import MANAGE, has_project_perm

# Cases whose series may still gain an instance (no reader has marked it yet).
OPEN_STATES = (Case.State.IMPORTED, Case.State.QC)


class QuarantineError(DomainError, ValueError):
    """A review step the item's state or input does not allow."""

    status = 409
    code = "quarantine_refused"


def reviewable(user):
    """Quarantine rows this user reviews: those of the projects they manage."""
    from annotation_server.projects.permissions import project_ids

    if not user.is_authenticated or not user.is_active:
        return Quarantine.objects.none()
    if user.is_superuser:
        return Quarantine.objects.all()
    return Quarantine.objects.filter(project_id__in=project_ids(user, MANAGE))


def _check(user, item: Quarantine, note: str | None) -> None:
    if not has_project_perm(user, item.project, MANAGE):
        raise PermissionDenied(_("Only the project's dataset managers review quarantine."))
    if item.status != Quarantine.Status.PENDING:
        raise QuarantineError(
            _("%(item)s was already %(status)s.")
            % {"item": item.sop_instance_uid, "status": item.get_status_display()}
        )
    if note is not None and not note.strip():
        raise QuarantineError(_("Say what you checked (e.g. 'no burned-in text on review')."))


def _series_open(item: Quarantine) -> None:
    """Refuse to add an instance to a series whose case readers have started."""
    case = (
        Case.objects.filter(
            project=item.project,
            series__series_uid=item.series_uid,
        )
        .exclude(state__in=OPEN_STATES)
        .first()
    )
    if case is not None:
        raise QuarantineError(
            _(
                "Case %(code)s is already %(state)s: adding an image to its series would "
                "move the slices under the readers' marks. Reject this image, or withdraw "
                "the case first."
            )
            % {"code": case.code, "state": case.get_state_display()}
        )


def load(item: Quarantine) -> pydicom.Dataset:
    """The quarantined file, as stored (already de-identified but for its pixels)."""
    with default_storage.open(item.file, "rb") as fh:
        return pydicom.dcmread(io.BytesIO(fh.read()))


def render(ds: pydicom.Dataset, frame: int = 0) -> bytes:
    """PNG of one frame over its full range, so faint and bright text both show."""
    decoded = pixels.decode_frame(ds, frame)
    if decoded.rgb:
        return pixels.render_png(ds, decoded)
    lo, hi = float(decoded.values.min()), float(decoded.values.max())
    return pixels.render_png(ds, decoded, center=(lo + hi) / 2, width=max(hi - lo, 1.0))


def suggested_boxes(item: Quarantine, ds: pydicom.Dataset | None = None) -> list[dict]:
    """The boxes the review page draws first: OCR's, found at ingest or now."""
    if item.text_boxes is None:
        ds = ds if ds is not None else load(item)
        found = find_text_in_dataset(ds)
        boxes = found.suggested_boxes()
        Quarantine.objects.filter(pk=item.pk).update(text_boxes=boxes)
        item.text_boxes = boxes
    return list(item.text_boxes or [])


def boxes_for(item: Quarantine, ds: pydicom.Dataset, raw) -> list:
    try:
        boxes = clean_boxes(raw, int(ds.Rows), int(ds.Columns))
    except RedactionError as exc:
        raise QuarantineError(_("The boxes are not valid: %(why)s") % {"why": exc}) from exc
    if not boxes:
        raise QuarantineError(_("Draw at least one box over the text to redact."))
    return boxes


def redacted_uid(item: Quarantine) -> str:
    """The redacted copy's SOP Instance UID: derived like every de-identified UID
    (HMAC of the project's secret), from the quarantined instance's UID."""
    deid = Deidentifier(keys.project_secret(item.project))
    return deid.uid(f"redacted:{item.sop_instance_uid}")


def preview(item: Quarantine, user, raw_boxes) -> bytes:
    """PNG of the redaction as it would be written (nothing is stored)."""
    _check(user, item, None)
    ds = load(item)
    boxes = boxes_for(item, ds, raw_boxes)
    try:
        out = redact_dataset(ds, boxes, redacted_uid(item))
    except RedactionError as exc:
        raise QuarantineError(str(exc)) from exc
    return render(out)


def _admit(item: Quarantine, entry: imaging.StoredEntry, user) -> Instance:
    """Index one stored instance, open a case for a new series, queue its QC."""
    from annotation_server.imaging.ingest.pipeline import case_for
    from annotation_server.jobs import services as jobs

    if item.source_format and entry.facts is not None:  # a photograph keeps its file format
        entry.facts.instance["source_format"] = item.source_format
    report = imaging.index_entries(item.project, [entry])
    for series in report.new_series:
        case_for(item.project, series, series.study.site)
    series_ids = [s.pk for s in report.series]
    case_ids = list(
        Case.objects.filter(project=item.project, series_id__in=series_ids).values_list(
            "pk", flat=True
        )
    )
    if case_ids:
        jobs.enqueue(
            "qc.check_cases", project=item.project, user=user, params={"case_ids": case_ids}
        )
    if series_ids:
        jobs.enqueue(
            "imaging.build_series_streams",
            project=item.project,
            user=user,
            params={"series_ids": series_ids},
        )
    return (
        Instance.objects.filter(
            series__in=Series.objects.filter(pk__in=series_ids),
            sop_instance_uid=entry.facts.sop_instance_uid,
        )
        .order_by("frame")
        .first()
    )


def _close(item: Quarantine, user, status: str, note: str, **fields) -> None:
    Quarantine.objects.filter(pk=item.pk).update(
        status=status, reviewed_by=user, reviewed_at=timezone.now(), review_note=note, **fields
    )
    item.refresh_from_db()


@transaction.atomic
def release(item: Quarantine, user, note: str) -> Instance:
    """Admit a reviewed instance as it is (the reason is required and audited)."""
    _check(user, item, note)
    _series_open(item)
    with default_storage.open(item.file, "rb") as fh:
        data = fh.read()
    header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    instance = _admit(item, imaging.StoredEntry(header, item.sha256, item.file, len(data)), user)
    _close(item, user, Quarantine.Status.RELEASED, note)
    audit.record(
        "imaging.quarantine_released",
        actor=user,
        obj=item,
        project_id=item.project_id,
        data={"note": note, "reason": item.reason, "sop_instance_uid": item.sop_instance_uid},
    )
    return instance


@transaction.atomic
def redact(item: Quarantine, user, raw_boxes, note: str = "") -> Instance:
    """Write the redacted copy as a new instance and admit it; the original stays
    quarantined (status "redacted"), out of every normal path."""
    _check(user, item, None)
    _series_open(item)
    ds = load(item)
    boxes = boxes_for(item, ds, raw_boxes)
    new_uid = redacted_uid(item)
    try:
        out = redact_dataset(ds, boxes, new_uid)
    except RedactionError as exc:
        raise QuarantineError(str(exc)) from exc
    entry = imaging.store(out)
    instance = _admit(item, entry, user)
    box_dicts = [b.as_dict() for b in boxes]
    _close(
        item,
        user,
        Quarantine.Status.REDACTED,
        note.strip(),
        redacted_boxes=box_dicts,
        redacted_sop_instance_uid=new_uid,
    )
    audit.record(
        "imaging.quarantine_redacted",
        actor=user,
        obj=item,
        project_id=item.project_id,
        data={
            "reason": item.reason,
            "note": note.strip(),
            "boxes": box_dicts,
            "sop_instance_uid": item.sop_instance_uid,
            "redacted_sop_instance_uid": new_uid,
            "redacted_sha256": entry.sha256,
        },
    )
    return instance


@transaction.atomic
def reject(item: Quarantine, user, note: str) -> None:
    """Refuse an instance; its file is deleted unless something else uses it."""
    _check(user, item, note)
    _close(item, user, Quarantine.Status.REJECTED, note)
    if not Instance.objects.filter(sha256=item.sha256).exists():
        transaction.on_commit(lambda: default_storage.delete(item.file))
    audit.record(
        "imaging.quarantine_rejected",
        actor=user,
        obj=item,
        project_id=item.project_id,
        data={"note": note, "reason": item.reason, "sop_instance_uid": item.sop_instance_uid},
    )


def viewed(item: Quarantine, user) -> None:
    """Audit a look at a quarantined image (its pixels may show the patient's details)."""
    audit.record(
        "imaging.quarantine_viewed",
        actor=user,
        obj=item,
        project_id=item.project_id,
        data={"sop_instance_uid": item.sop_instance_uid, "status": item.status},
    )
