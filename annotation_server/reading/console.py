"""The manager's "nothing stuck" actions on the reading side: withdraw a case
from reading (kept, flagged, never deleted) and return it to reading, and the
list of what is stuck in a project (reads whose reader left, overdue reads).

Reassigning a read is `assignment.reassign`; settling by force and reassigning
an arbitration are the adjudication app's (adjudication/services/console.py).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.accounts.models import Role
from annotation_server.audit import services as audit
from annotation_server.projects.models import Case, Membership, Project
from annotation_server.projects.permissions import MANAGE, has_project_perm
from annotation_server.projects.services import transition
from annotation_server.quality import services as quality
from annotation_server.quality.models import CaseFlag
from annotation_server.reading.models import ReadingTask

WITHDRAWABLE = (Case.State.QC, Case.State.READING)


def _check_manager(by, project: Project) -> None:
    if by is not None and not has_project_perm(by, project, MANAGE):
        raise PermissionDenied(gettext("Only the project's dataset managers can do this."))


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(gettext("Give a reason: it is kept in the audit log."))
    return reason


@transaction.atomic
def withdraw_case(case: Case, *, by, reason: str) -> Case:
    """Take a case out of reading: it goes back to QC, is flagged "withdrawn"
    with the reason, and is never assigned again until returned. Its reads stay
    as they are (open ones can no longer be edited: the case is not in reading)."""
    reason = _reason(reason)
    case = Case.objects.select_for_update(of=("self",)).select_related("project").get(pk=case.pk)
    _check_manager(by, case.project)
    if case.state not in WITHDRAWABLE:
        raise ValidationError(
            gettext("Only a case in QC or reading can be withdrawn; %(case)s is %(state)s.")
            % {"case": case.code, "state": case.get_state_display()}
        )
    if CaseFlag.objects.filter(
        case=case, kind=CaseFlag.Kind.WITHDRAWN, resolved_at__isnull=True
    ).exists():
        raise ValidationError(gettext("The case is already withdrawn."))
    open_reads = list(
        ReadingTask.objects.operational()
        .filter(case=case)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .values_list("pk", flat=True)
    )
    if case.state == Case.State.READING:
        case = transition(case, Case.State.QC, by=by, reason=f"withdrawn: {reason}")
    quality.raise_flag(
        case,
        CaseFlag.Kind.WITHDRAWN,
        by=by,
        reason=reason,
        data={"open_reads": open_reads},
    )
    audit.record(
        "case.withdrawn",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={"reason": reason, "open_reads": open_reads},
    )
    return case


@transaction.atomic
def return_to_reading(case: Case, *, by, reason: str) -> Case:
    """Undo a withdrawal: the flag is resolved; a case that already has reads
    goes back to reading (its open reads continue), one without waits for the
    next assignment run."""
    reason = _reason(reason)
    case = Case.objects.select_for_update(of=("self",)).select_related("project").get(pk=case.pk)
    _check_manager(by, case.project)
    if not quality.resolve_flags(case, CaseFlag.Kind.WITHDRAWN, by=by, resolution=reason):
        raise ValidationError(gettext("The case is not withdrawn."))
    has_reads = ReadingTask.objects.operational().filter(case=case).exists()
    if has_reads and case.state == Case.State.QC:
        case = transition(case, Case.State.READING, by=by, reason=f"returned: {reason}")
    audit.record(
        "case.returned_to_reading",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={"reason": reason, "state": case.state},
    )
    return case


def stuck_reads(project: Project) -> list[dict]:
    """Open reads that will not finish by themselves: the reader is inactive or
    no longer a reader of the project, or the read is overdue."""
    now = timezone.now()
    readers = set(
        Membership.objects.filter(
            project=project, role=Role.READER, user__is_active=True
        ).values_list("user_id", flat=True)
    )
    out = []
    tasks = (
        ReadingTask.objects.operational()
        .filter(case__project=project, case__state=Case.State.READING)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .select_related("case", "reader__profile")
        .order_by("case__code", "phase", "id")
    )
    for task in tasks:
        gone = task.reader_id not in readers
        overdue = task.is_overdue(now)
        if not (gone or overdue):
            continue
        profile = getattr(task.reader, "profile", None)
        out.append(
            {
                "task": task,
                "task_id": task.pk,
                "case": task.case.code,
                "case_id": task.case_id,
                "phase": task.phase,
                "reader": profile.pseudonym if profile else f"user-{task.reader_id}",
                "reader_gone": gone,
                "overdue": overdue,
                "due_at": task.due_at,
            }
        )
    return out
