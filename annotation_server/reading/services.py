"""Reading workflows: start, draft findings and labels, submit.

Every write checks that the person is the task's reader, that the task is
still open, and the version the client last saw (optimistic locking): a stale
write raises VersionConflict and changes nothing.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.projects import schema as schema_rules
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import READ, has_project_perm
from annotation_server.reading import derived as derived_fields
from annotation_server.reading.geometry import validate_geometry
from annotation_server.reading.measurements import measure_finding
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask


class ReadLockedError(DomainError):
    """The read is submitted (or its case has left reading): it is read-only."""

    code = "read_locked"


class VersionConflict(DomainError):
    """Someone (another tab, another person) saved a newer version first."""

    code = "version_conflict"

    def __init__(self, message: str, current_version: int | None = None):
        super().__init__(message, current_version=current_version)
        self.current_version = current_version


def _check_writable(task: ReadingTask, user) -> None:
    if task.reader_id != user.pk:
        raise PermissionDenied(gettext("Only the task's reader can change this read."))
    if not has_project_perm(user, task.case.project, READ):
        raise PermissionDenied(gettext("You no longer hold the reader role in this project."))
    if task.state == ReadingTask.State.SUBMITTED:
        raise ReadLockedError(gettext("This read is submitted and read-only."))
    if not task.case.is_qualification and task.case.state != Case.State.READING:
        raise ReadLockedError(
            gettext("The case is in %(state)s, no longer open for reading.")
            % {"state": task.case.state}
        )


def _lock_task(task: ReadingTask) -> ReadingTask:
    return ReadingTask.objects.select_for_update().select_related("case__project").get(pk=task.pk)


def _touch(task: ReadingTask) -> None:
    updates = {"version": F("version") + 1}
    if task.state == ReadingTask.State.ASSIGNED:
        updates.update(state=ReadingTask.State.IN_PROGRESS, started_at=timezone.now())
    ReadingTask.objects.filter(pk=task.pk).update(**updates)


def _centre(geometry: dict) -> tuple[float | None, float | None, float | None]:
    centre = geometry.get("centre_mm")
    return tuple(float(v) for v in centre) if centre else (None, None, None)


@transaction.atomic
def start(task: ReadingTask, user) -> ReadingTask:
    task = _lock_task(task)
    _check_writable(task, user)
    if task.state == ReadingTask.State.ASSIGNED:
        _touch(task)
        audit.record("read.started", actor=user, obj=task, project_id=task.case.project_id)
    task.refresh_from_db()
    return task


@transaction.atomic
def save_finding(
    task: ReadingTask,
    user,
    *,
    finding_type: str,
    geometry: dict,
    attributes: dict | None = None,
    source: str = Finding.Source.MANUAL,
    finding: Finding | None = None,
    expected_version: int | None = None,
) -> Finding:
    """Create (finding=None) or update a draft finding."""
    task = _lock_task(task)
    _check_writable(task, user)
    kind = validate_geometry(geometry)
    attributes = attributes or {}
    schema_rules.validate_finding(
        task.case.project.label_schema.definition, finding_type, kind, attributes, complete=False
    )
    x, y, z = _centre(geometry)
    # Measured again only when the outline changed (an attributes-only save keeps them).
    if finding is None or geometry != finding.geometry or finding.measurements is None:
        measurements = measure_finding(task.case.series, geometry)
    else:
        measurements = finding.measurements
    if finding is None:
        finding = Finding.objects.create(
            task=task,
            finding_type=finding_type,
            geometry=geometry,
            attributes=attributes,
            measurements=measurements,
            source=source,
            centre_x_mm=x,
            centre_y_mm=y,
            centre_z_mm=z,
        )
    else:
        if finding.task_id != task.pk:
            raise PermissionDenied(gettext("That finding belongs to another read."))
        if expected_version is None:
            raise VersionConflict(gettext("Send the version you edited."), finding.version)
        changed = Finding.objects.filter(pk=finding.pk, version=expected_version).update(
            finding_type=finding_type,
            geometry=geometry,
            attributes=attributes,
            measurements=measurements,
            source=source,
            centre_x_mm=x,
            centre_y_mm=y,
            centre_z_mm=z,
            version=F("version") + 1,
            updated_at=timezone.now(),
        )
        if changed != 1:
            current = (
                Finding.objects.filter(pk=finding.pk).values_list("version", flat=True).first()
            )
            raise VersionConflict(
                gettext(
                    "This finding was saved elsewhere (version %(current)s, you edited "
                    "%(edited)s). Reload to see the newer version."
                )
                % {"current": current, "edited": expected_version},
                current,
            )
        finding.refresh_from_db()
        from annotation_server.reading import assist  # assist builds on this module

        assist.finding_saved(finding)
    _touch(task)
    return finding


@transaction.atomic
def delete_finding(finding: Finding, user, *, expected_version: int | None) -> None:
    task = _lock_task(finding.task)
    _check_writable(task, user)
    deleted, _ = Finding.objects.filter(pk=finding.pk, version=expected_version).delete()
    if not deleted:
        current = Finding.objects.filter(pk=finding.pk).values_list("version", flat=True).first()
        raise VersionConflict(gettext("This finding changed since you loaded it."), current)
    from annotation_server.reading import assist

    assist.finding_deleted(finding)
    _touch(task)


@transaction.atomic
def save_case_label(
    task: ReadingTask, user, values: dict, *, expected_version: int | None
) -> CaseLabel:
    task = _lock_task(task)
    _check_writable(task, user)
    fields = task.case.project.label_schema.definition.get("case_fields", [])
    schema_rules.validate_values(fields, values, complete=False, where="case")
    label, created = CaseLabel.objects.get_or_create(task=task, defaults={"values": values})
    if not created:
        changed = CaseLabel.objects.filter(pk=label.pk, version=expected_version).update(
            values=values, version=F("version") + 1, updated_at=timezone.now()
        )
        if changed != 1:
            raise VersionConflict(gettext("The case labels were saved elsewhere."), label.version)
        label.refresh_from_db()
    _store_derived(task)
    label.refresh_from_db()
    _touch(task)
    return label


def _store_derived(task: ReadingTask) -> None:
    """Recompute the schema's derived fields for the read and keep them with its
    case label (created empty if the read has none yet). Not a reader edit: the
    label's version is left alone."""
    values = derived_fields.for_read(task)
    if not values:
        return
    label, _ = CaseLabel.objects.get_or_create(task=task)
    if label.derived != values:
        CaseLabel.objects.filter(pk=label.pk).update(derived=values)


@transaction.atomic
def submit(
    task: ReadingTask, user, *, expected_version: int | None, active_seconds: int | None = None
) -> ReadingTask:
    """Validate the whole read against the schema and lock it for this phase."""
    task = _lock_task(task)
    _check_writable(task, user)
    if expected_version is not None and expected_version != task.version:
        raise VersionConflict(gettext("The read changed since you loaded it."), task.version)
    definition = task.case.project.label_schema.definition
    errors: list[str] = []
    for finding in task.findings.all():
        try:
            schema_rules.validate_finding(
                definition,
                finding.finding_type,
                finding.geometry.get("kind"),
                finding.attributes,
                complete=True,
            )
        except schema_rules.SchemaError as exc:
            errors.extend(f"finding {finding.uid}: {e}" for e in exc.errors)
    label = CaseLabel.objects.filter(task=task).first()
    try:
        schema_rules.validate_values(
            definition.get("case_fields", []),
            label.values if label else {},
            complete=True,
            where="case",
        )
    except schema_rules.SchemaError as exc:
        errors.extend(exc.errors)
    if errors:
        raise schema_rules.SchemaError(errors)
    _store_derived(task)  # final findings: the cup-to-disc ratio as submitted
    now = timezone.now()
    ReadingTask.objects.filter(pk=task.pk).update(
        state=ReadingTask.State.SUBMITTED,
        submitted_at=now,
        started_at=task.started_at or now,
        version=F("version") + 1,
        # The client's total counts only up to the wall time since assignment.
        active_seconds=max(
            task.active_seconds,
            min(active_seconds or 0, _wall_seconds_since(task.assigned_at)),
        ),
    )
    audit.record(
        "read.submitted",
        actor=user,
        obj=task,
        project_id=task.case.project_id,
        data={"findings": task.findings.count(), "phase": task.phase},
    )
    task.refresh_from_db()
    from annotation_server.reading import phases

    phases.after_submit(task, user)  # next phase, matching, or qualification scoring
    return task


MAX_HEARTBEAT_SECONDS = 120


def _wall_seconds_since(moment) -> int:
    return max(0, int((timezone.now() - moment).total_seconds())) if moment else 0


@transaction.atomic
def record_active_time(task: ReadingTask, user, seconds: int) -> ReadingTask:
    """Add reading time reported by the workstation. A report counts at most
    MAX_HEARTBEAT_SECONDS and never more than the wall time since the previous
    report (or since the task was assigned), so neither a stuck tab nor a client
    that reports 120 s every second can inflate it. Does not bump the task
    version: time is not an edit."""
    if task.reader_id != user.pk:
        raise PermissionDenied(gettext("Only the task's reader reports reading time."))
    task = ReadingTask.objects.select_for_update().get(pk=task.pk)
    if task.state == ReadingTask.State.SUBMITTED:
        raise ReadLockedError(gettext("This read is submitted and read-only."))
    since = _wall_seconds_since(task.last_heartbeat_at or task.assigned_at)
    seconds = max(0, min(int(seconds), MAX_HEARTBEAT_SECONDS, since))
    ReadingTask.objects.filter(pk=task.pk).update(
        active_seconds=F("active_seconds") + seconds, last_heartbeat_at=timezone.now()
    )
    task.refresh_from_db(fields=["active_seconds", "last_heartbeat_at"])
    return task
