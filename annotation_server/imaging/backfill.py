"""Filling in what the import records about each image for instances imported
before it was recorded (`manage.py backfill_instance_views`).

Since migration 0010 the import records each image's view position
(Instance.view_position, from `headers.view_position`) next to its laterality
(`headers.laterality`, since 0009). A row whose view_position is NULL was imported
before that: the series panel then reads its header on every cold cache. This
reads each such row's stored header once, with the import's own functions, and
writes both:

- view_position: what the header says, "" when it says nothing (the row then
  counts as recorded and is never looked at again, which makes the fill
  idempotent: a second run examines only what the first could not read; the
  rows of frozen versions are skipped, below);
- laterality: only where the row's is empty (one recorded at import is kept);
- source_format "DICOM": only where it is empty and the row's SOP class is not
  Ophthalmic Photography 8 Bit, the one class the photograph import
  (`photo.convert`) writes: any other class can only have arrived as DICOM. An
  Ophthalmic Photography row may have come from a JPEG/PNG/TIFF file or from a
  DICOM file, and the row does not say which: its source format is left empty.

Rows of a frozen dataset version are left as they are (frozen means frozen: the
database refuses any change to them, datasets/guards.py): they are counted, their
files are not read, and the series panel goes on reading their headers. Which rows
are frozen is asked of the datasets app through the hook
`imaging.read_only_instances` (this app may not import that one).

A version frozen while the fill runs (after a batch was checked, before it is
written) makes the database refuse that batch: its rows are asked about again,
those now frozen are counted and left out, and the rest are written.

Only the start of each file is read (`view_header.read_view_header`), never its
pixels. A file that cannot be read (gone from storage, not DICOM, truncated) is
reported by instance id and skipped; the rest are done. Rows are taken in id order
in batches, each batch written with one bulk_update.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import DatabaseError, transaction

from annotation_server.imaging.models import Instance, SourceFormat
from annotation_server.imaging.photo.convert import OPHTHALMIC_PHOTOGRAPHY_8BIT
from annotation_server.imaging.view_header import UnreadableHeader, read_view_header, recorded_views
from annotation_server.jobs import hooks

DEFAULT_BATCH = 500


def known_dicom(instance: Instance) -> bool:
    """Whether the row alone shows the image arrived as DICOM: any SOP class
    but the one the photograph import writes."""
    return instance.sop_class_uid != OPHTHALMIC_PHOTOGRAPHY_8BIT


def read_only_ids(ids) -> set[int]:
    """Which of these instances may not change (rows of a frozen dataset version)."""
    ids = list(ids)
    out: set[int] = set()
    for answer in hooks.collect("imaging.read_only_instances", ids):
        out |= set(answer)
    return out


@dataclass
class BackfillReport:
    examined: int = 0
    filled: int = 0  # rows written (or, with dry_run, that would be)
    source_formats: int = 0  # of those, rows given source_format DICOM
    unreadable: list[tuple[int, str]] = field(default_factory=list)  # (instance id, why)
    frozen: int = 0  # rows of a frozen dataset version, left as they are (not examined)


def backfill_views(
    *,
    project_id: int | None = None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    on_unreadable: Callable[[int, str, str], None] | None = None,
) -> BackfillReport:
    """Fill view_position (and empty laterality / source_format, see the module)
    of every instance imported before it was recorded, `batch` rows at a time.
    `on_unreadable(instance_id, key, why)` is told of each unreadable file as met."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    report = BackfillReport()
    rows = Instance.objects.filter(view_position__isnull=True)
    if project_id is not None:
        rows = rows.filter(series__study__project_id=project_id)
    rows = rows.only("id", "file", "sop_class_uid", "laterality", "view_position", "source_format")
    after = 0
    while True:
        chunk = list(rows.filter(id__gt=after).order_by("id")[:batch])
        if not chunk:
            return report
        after = chunk[-1].pk
        read_only = read_only_ids(i.pk for i in chunk)
        report.frozen += len(read_only)
        chunk = [i for i in chunk if i.pk not in read_only]
        changed = []
        given_format: set[int] = set()  # rows given source_format DICOM
        read: dict[str, dict[str, str] | str] = {}  # key -> views, or why unreadable
        for instance in chunk:
            report.examined += 1
            if instance.file not in read:  # the frames of one file share it
                try:
                    read[instance.file] = recorded_views(read_view_header(instance.file))
                except UnreadableHeader as exc:
                    read[instance.file] = str(exc)
            views = read[instance.file]
            if isinstance(views, str):
                report.unreadable.append((instance.pk, views))
                if on_unreadable is not None:
                    on_unreadable(instance.pk, instance.file, views)
                continue
            instance.view_position = views["view_position"]
            if not instance.laterality:
                instance.laterality = views["laterality"]
            if not instance.source_format and known_dicom(instance):
                instance.source_format = SourceFormat.DICOM
                given_format.add(instance.pk)
            changed.append(instance)
        if changed and not dry_run:
            changed = _write(changed, report)
        report.filled += len(changed)
        report.source_formats += sum(1 for i in changed if i.pk in given_format)


def _write(changed: list[Instance], report: BackfillReport) -> list[Instance]:
    """Write one batch; the rows written. A version frozen after the batch was
    checked makes the database refuse the whole batch: the rows that have become
    read-only are then counted as frozen, left out, and the rest written. Any
    other database error, or a refusal with no newly frozen row, is raised."""
    while changed:
        try:
            with transaction.atomic():
                Instance.objects.bulk_update(
                    changed, ["view_position", "laterality", "source_format"]
                )
            return changed
        except DatabaseError:
            newly = read_only_ids(i.pk for i in changed)
            if not newly:
                raise
            report.frozen += len(newly)
            report.examined -= len(newly)
            changed = [i for i in changed if i.pk not in newly]
    return changed
