"""The reading phases of a case: blind phase 1, the optional unblinded review
phase 2 (LIDC-IDRI style), then matching.

`after_submit` runs inside the submit's transaction. It locks the case row
first, so when two readers submit at the same moment the second one waits for
the first to commit and then sees both reads: exactly one of them opens the
next phase. Qualification reads never enter phases or matching; their last
submission scores the attempt instead.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from annotation_server.audit import services as audit
from annotation_server.jobs import hooks
from annotation_server.jobs import services as jobs
from annotation_server.projects.models import Case
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask


def _real_tasks(case: Case, phase: int):
    return ReadingTask.objects.operational().filter(case=case, phase=phase)


def phase_complete(case: Case, phase: int, readers_needed: int) -> bool:
    """Every read of the phase is in, and there are as many as the protocol asks
    for (phase 1) or as there were blind reads (phase 2)."""
    tasks = _real_tasks(case, phase)
    total = tasks.count()
    if total == 0 or total < readers_needed:
        return False
    return not tasks.exclude(state=ReadingTask.State.SUBMITTED).exists()


def after_submit(task: ReadingTask, actor) -> None:
    """Called by reading.services.submit once the read is locked (same transaction)."""
    if task.attempt_id is not None:
        hooks.run("reading.attempt_read_submitted", task, actor)  # qualification scores the attempt
        return
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("project__protocol")
        .get(pk=task.case_id)
    )
    if case.is_qualification or case.state != Case.State.READING:
        return
    protocol = case.project.protocol
    if task.phase == 1:
        if not phase_complete(case, 1, protocol.readers_per_case):
            return
        if protocol.review_phase:
            open_review_phase(case, actor)
        else:
            _reads_complete(case, actor)
    elif task.phase == 2:
        blind_reads = _real_tasks(case, 1).count()
        if phase_complete(case, 2, blind_reads):
            _reads_complete(case, actor)


@transaction.atomic
def open_review_phase(case: Case, actor) -> list[ReadingTask]:
    """Create each blind reader's phase-2 task holding a copy of their phase-1
    findings (derived_from set, source kept) and case labels. Idempotent."""
    if _real_tasks(case, 2).exists():
        return []
    due = timezone.now() + timedelta(days=case.project.protocol.reading_days)
    created = []
    for blind in _real_tasks(case, 1).order_by("id"):
        review = ReadingTask.objects.create(
            case=case, reader_id=blind.reader_id, phase=2, due_at=due
        )
        Finding.objects.bulk_create(
            [
                Finding(
                    task=review,
                    finding_type=f.finding_type,
                    geometry=f.geometry,
                    centre_x_mm=f.centre_x_mm,
                    centre_y_mm=f.centre_y_mm,
                    centre_z_mm=f.centre_z_mm,
                    attributes=f.attributes,
                    measurements=f.measurements,
                    source=f.source,
                    derived_from=f,
                )
                for f in blind.findings.order_by("created_at", "id")
            ]
        )
        label = CaseLabel.objects.filter(task=blind).first()
        if label is not None:
            CaseLabel.objects.create(task=review, values=label.values)
        created.append(review)
    audit.record(
        "case.review_phase_opened",
        actor=actor,
        obj=case,
        project_id=case.project_id,
        data={"tasks": [t.pk for t in created], "due": due.isoformat()},
    )
    return created


def reads_complete(case: Case, actor=None):
    """Every read of the case's last phase is in: queue matching and settling (the
    "adjudication.settle" job, by kind). Its job row is written in this
    transaction and dispatched after commit.

    The job is the system's, not the actor's: the audit row names who completed
    the reads, while the job (whose result counts the disputes) stays out of the
    submitting reader's job list; the project's managers see it."""
    audit.record("adjudication.reads_complete", actor=actor, obj=case, project_id=case.project_id)
    return jobs.enqueue("adjudication.settle", params={"case_id": case.pk}, project=case.project)


def _reads_complete(case: Case, actor) -> None:
    reads_complete(case, actor)
