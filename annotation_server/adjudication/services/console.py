"""The manager's "nothing stuck" actions on the adjudication side: settle a case
by force (with a reason) and move an open arbitration task (sole, first,
second or tie-break) to another arbitrator, keeping what the protocol requires.
Every action is audited; nothing is deleted but unsigned drafts, and the
audit event says what was discarded."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.accounts.models import Role
from annotation_server.adjudication.models import ArbitrationTask, Settlement
from annotation_server.adjudication.services.common import SettleError
from annotation_server.adjudication.services.settle import arbitrator_candidates, settle_case
from annotation_server.audit import services as audit
from annotation_server.projects.models import Case, Membership, Project
from annotation_server.projects.permissions import MANAGE, has_project_perm
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask


def _check_manager(by, project) -> None:
    if by is not None and not has_project_perm(by, project, MANAGE):
        raise PermissionDenied(gettext("Only the project's dataset managers can do this."))


def _reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(gettext("Give a reason: it is kept in the audit log."))
    return reason


def settle_phase(case: Case) -> int:
    """The phase a forced settle uses: the review phase once it is open, else the blind one."""
    phases = ReadingTask.objects.operational().filter(case=case).values_list("phase", flat=True)
    return max(phases, default=1)


@transaction.atomic
def force_settle(case: Case, *, by, reason: str) -> Settlement:
    """Settle a case in reading now, on the reads submitted so far in its latest
    phase. The open reads of the case are closed: their drafts are discarded
    (counted in the audit event). Matching, auto-consensus and arbitration then
    run as for any case; the settlement keeps the reason."""
    reason = _reason(reason)
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("project__protocol")
        .get(pk=case.pk)
    )
    _check_manager(by, case.project)
    if Settlement.objects.filter(case=case).exists():
        raise SettleError(gettext("The case is settled already."))
    if case.state != Case.State.READING:
        raise SettleError(
            gettext("Only a case in reading can be settled; %(case)s is %(state)s.")
            % {"case": case.code, "state": case.get_state_display()}
        )
    phase = settle_phase(case)
    tasks = ReadingTask.objects.operational().filter(case=case)
    reads = list(tasks.filter(phase=phase, state=ReadingTask.State.SUBMITTED).order_by("id"))
    if not reads:
        raise SettleError(
            gettext("No read of this case is submitted yet: reassign its reads or withdraw it.")
        )
    open_reads = list(tasks.exclude(state=ReadingTask.State.SUBMITTED))
    discarded = [
        {
            "task": t.pk,
            "reader_id": t.reader_id,
            "phase": t.phase,
            "findings": Finding.objects.filter(task=t).count(),
            "case_labels": CaseLabel.objects.filter(task=t).exists(),
        }
        for t in open_reads
    ]
    for t in open_reads:
        t.delete()  # an unsubmitted draft; the audit event below counts what it held
    audit.record(
        "adjudication.forced_settle",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={
            "reason": reason,
            "phase": phase,
            "reads": [t.pk for t in reads],
            "discarded_open_reads": discarded,
        },
    )
    return settle_case(case.pk, actor=by, reads=reads, forced=reason)


def _round_arbitrators(task: ArbitrationTask) -> list:
    return [
        t.arbitrator
        for t in ArbitrationTask.objects.filter(case=task.case, round=task.round).select_related(
            "arbitrator"
        )
    ]


def arbitration_candidates(task: ArbitrationTask) -> list:
    """Arbitrators who could take the task over: active arbitrators of the
    project who did not read the case, hold no other task of this round (blind
    arbitrators stay distinct and never see each other's decisions; the
    tie-breaker is a third person) and, where the protocol excludes own-site
    reads, are not of the case's site. Least loaded first."""
    case = task.case
    people = arbitrator_candidates(case, exclude=_round_arbitrators(task))
    if case.project.protocol.exclude_own_site and case.site_id is not None:
        people = [
            p
            for p in people
            if getattr(getattr(p, "profile", None), "site_id", None) != case.site_id
        ]
    return people


@transaction.atomic
def reassign_arbitration(task: ArbitrationTask, new_arbitrator, *, by, reason: str = ""):
    """Move an unsigned arbitration task to another arbitrator. The task keeps
    its case, round, role and items; the previous arbitrator's draft decisions
    are discarded (a new person decides afresh, and a blind arbitrator's draft
    is never shown to anyone else)."""
    task = (
        ArbitrationTask.objects.select_for_update(of=("self",))
        .select_related("case__project__protocol")
        .get(pk=task.pk)
    )
    _check_manager(by, task.case.project)
    if task.state == ArbitrationTask.State.SIGNED:
        raise ValidationError(gettext("A signed arbitration cannot be reassigned."))
    if task.case.state != Case.State.ARBITRATION:
        raise ValidationError(gettext("The case is no longer in arbitration."))
    if new_arbitrator.pk not in {u.pk for u in arbitration_candidates(task)}:
        raise ValidationError(gettext("That person is not an eligible arbitrator for this task."))
    old = task.arbitrator_id
    decided = task.decisions or {}
    discarded = len(decided.get("clusters", {}) or {}) + len(decided.get("labels", {}) or {})
    discarded += len(decided.get("added", []) or [])
    ArbitrationTask.objects.filter(pk=task.pk).update(
        arbitrator=new_arbitrator,
        decisions={},
        state=ArbitrationTask.State.ASSIGNED,
        assigned_at=timezone.now(),
        version=F("version") + 1,
    )
    audit.record(
        "arbitration.reassigned",
        actor=by,
        obj=task,
        project_id=task.case.project_id,
        data={
            "case": task.case.code,
            "role": task.role,
            "round": task.round,
            "from_arbitrator": old,
            "to_arbitrator": new_arbitrator.pk,
            "discarded_decisions": discarded,
            "reason": reason,
        },
    )
    task.refresh_from_db()
    return task


def stuck_arbitrations(project: Project) -> list[dict]:
    """Open arbitration tasks whose arbitrator is inactive or no longer an
    arbitrator of the project, with the people who could take each over."""
    arbitrators = set(
        Membership.objects.filter(
            project=project, role=Role.ARBITRATOR, user__is_active=True
        ).values_list("user_id", flat=True)
    )
    out = []
    tasks = (
        ArbitrationTask.objects.filter(case__project=project, case__state=Case.State.ARBITRATION)
        .exclude(state=ArbitrationTask.State.SIGNED)
        .select_related("case__project__protocol", "arbitrator__profile")
        .order_by("case__code", "round", "role")
    )
    for task in tasks:
        gone = task.arbitrator_id not in arbitrators
        profile = getattr(task.arbitrator, "profile", None)
        out.append(
            {
                "task": task,
                "task_id": task.pk,
                "case": task.case.code,
                "case_id": task.case_id,
                "role": task.role,
                "role_label": task.get_role_display(),
                "round": task.round,
                "state_label": task.get_state_display(),
                "arbitrator": profile.pseudonym if profile else f"user-{task.arbitrator_id}",
                "arbitrator_gone": gone,
                "candidates": arbitration_candidates(task),
            }
        )
    return out


def unsettled_cases(project: Project) -> list[Case]:
    """Cases in reading whose reads are all in but that were never settled (the
    settle job failed, e.g. for lack of arbitrators): a forced settle retries.
    One query, however many cases are in reading."""
    real = Q(reading_tasks__attempt__isnull=True)
    cases = (
        Case.objects.filter(
            project=project, state=Case.State.READING, is_qualification=False, settlements=None
        )
        .annotate(
            reads=Count("reading_tasks", filter=real),
            open_reads=Count(
                "reading_tasks",
                filter=real & ~Q(reading_tasks__state=ReadingTask.State.SUBMITTED),
            ),
        )
        .filter(reads__gte=project.protocol.readers_per_case, open_reads=0)
        .order_by("code")
    )
    return list(cases)
