"""Assigning cases to readers: N distinct eligible readers per case, least-loaded
first, with the protocol's exclusions; reassignment when a reader drops out.

Runs as the "projects.assign" job and is idempotent: a case that already holds
its N phase-1 reads is left alone, so running it twice assigns nothing new.
A case is filled completely or not at all (a half-filled case would look
"complete" to the phase logic once its few reads are in); the cases that could
not be filled are reported with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.accounts.models import Role
from annotation_server.audit import services as audit
from annotation_server.projects import services as project_services
from annotation_server.projects.models import Case, Membership, Project

READABLE_QC = (Case.QcStatus.PASS, Case.QcStatus.WARN, Case.QcStatus.OVERRIDDEN)


@dataclass
class AssignmentReport:
    assigned_tasks: int = 0
    filled_cases: list[str] = field(default_factory=list)
    already_full: int = 0
    unfilled: list[dict] = field(default_factory=list)
    qualification_required: bool = False
    eligible_readers: int = 0

    def as_dict(self) -> dict:
        return {
            "assigned_tasks": self.assigned_tasks,
            "filled_cases": self.filled_cases,
            "already_full": self.already_full,
            "unfilled": self.unfilled,
            "qualification_required": self.qualification_required,
            "eligible_readers": self.eligible_readers,
        }


def qualification_required(project: Project) -> bool:
    """Readers must be qualified when the project has an active qualification test."""
    # Through the reverse relation: qualification sits above reading.
    return project.qualification_tests.filter(active=True).exists()


def eligible_readers(project: Project) -> list:
    """Active members with the reader role (qualified ones only when gated), by id."""
    memberships = Membership.objects.filter(project=project, role=Role.READER, user__is_active=True)
    if qualification_required(project):
        memberships = memberships.filter(qualified=True)
    ids = memberships.values_list("user_id", flat=True)
    return list(
        get_user_model().objects.filter(pk__in=ids).select_related("profile").order_by("pk")
    )


def _arbitrator_ids(project: Project) -> set[int]:
    return set(
        Membership.objects.filter(project=project, role=Role.ARBITRATOR).values_list(
            "user_id", flat=True
        )
    )


def _case_arbitrator_ids(case_ids) -> dict[int, set[int]]:
    # Through the cases' reverse relation: adjudication sits above reading.
    out: dict[int, set[int]] = {}
    rows = Case.objects.filter(pk__in=case_ids, arbitration_tasks__isnull=False).values_list(
        "pk", "arbitration_tasks__arbitrator_id"
    )
    for case_id, user_id in rows:
        out.setdefault(case_id, set()).add(user_id)
    return out


def open_loads(project: Project) -> dict[int, int]:
    """Open (unsubmitted) real reads per reader in this project."""
    from annotation_server.reading.models import ReadingTask

    rows = (
        ReadingTask.objects.operational()
        .filter(case__project=project)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .values("reader_id")
        .annotate(n=Count("id"))
    )
    return {r["reader_id"]: r["n"] for r in rows}


def exclusion_reason(
    user, case: Case, *, exclude_own_site: bool, arbitrators: set[int], current: set[int]
) -> str | None:
    """Why `user` may not read `case` (None: they may)."""
    if user.pk in current:
        return "already reads the case"
    if user.pk in arbitrators:
        return "arbitrator"
    if exclude_own_site and case.site_id is not None:
        profile = getattr(user, "profile", None)
        if profile is not None and profile.site_id == case.site_id:
            return "own site"
    return None


def _due(project: Project):
    return timezone.now() + timedelta(days=project.protocol.reading_days)


def candidate_cases(project: Project):
    """Real cases that passed QC (pass, warn or overridden) and are in QC or
    reading, except those a manager withdrew from reading."""
    from annotation_server.quality.models import CaseFlag

    withdrawn = CaseFlag.objects.filter(
        case=OuterRef("pk"), kind=CaseFlag.Kind.WITHDRAWN, resolved_at__isnull=True
    )
    return (
        Case.objects.filter(
            project=project,
            is_qualification=False,
            qc_status__in=READABLE_QC,
            state__in=(Case.State.QC, Case.State.READING),
        )
        .exclude(Exists(withdrawn))
        .select_related("site")
        .order_by("code", "pk")
    )


def assign_project(project: Project, *, by=None, progress=None) -> AssignmentReport:
    """Give every QC-passed case its N distinct eligible readers; see the module doc."""
    from annotation_server.reading.models import ReadingTask

    project = Project.objects.select_related("protocol").get(pk=project.pk)
    protocol = project.protocol
    n = protocol.readers_per_case
    report = AssignmentReport(qualification_required=qualification_required(project))
    readers = eligible_readers(project)
    report.eligible_readers = len(readers)
    project_arbitrators = _arbitrator_ids(project)
    cases = list(candidate_cases(project))
    case_arbitrators = _case_arbitrator_ids([c.pk for c in cases])
    loads = open_loads(project)
    total = len(cases)
    for done, case in enumerate(cases, 1):
        with transaction.atomic():
            locked = Case.objects.select_for_update().get(pk=case.pk)
            if locked.state not in (Case.State.QC, Case.State.READING):
                continue
            tasks = ReadingTask.objects.operational().filter(case=locked)
            if tasks.filter(phase__gt=1).exists():
                continue  # in the review phase: nothing to add
            current = set(tasks.filter(phase=1).values_list("reader_id", flat=True))
            needed = n - len(current)
            if needed <= 0:
                report.already_full += 1
                continue
            excluded = project_arbitrators | case_arbitrators.get(case.pk, set())
            reasons: dict[str, int] = {}
            pool = []
            for user in readers:
                why = exclusion_reason(
                    user,
                    case,
                    exclude_own_site=protocol.exclude_own_site,
                    arbitrators=excluded,
                    current=current,
                )
                if why is None:
                    pool.append(user)
                elif why != "already reads the case":
                    reasons[why] = reasons.get(why, 0) + 1
            if len(pool) < needed:
                report.unfilled.append(
                    {
                        "case": case.code,
                        "case_id": case.pk,
                        "needed": needed,
                        "eligible": len(pool),
                        "excluded_own_site": reasons.get("own site", 0),
                        "excluded_arbitrator": reasons.get("arbitrator", 0),
                        "reason": _unfilled_reason(
                            len(readers), report.qualification_required, reasons
                        ),
                    }
                )
                continue
            pool.sort(key=lambda u: (loads.get(u.pk, 0), u.pk))
            chosen = pool[:needed]
            due = _due(project)
            for user in chosen:
                ReadingTask.objects.create(case=locked, reader=user, phase=1, due_at=due)
                loads[user.pk] = loads.get(user.pk, 0) + 1
            if locked.state == Case.State.QC:
                project_services.transition(
                    locked, Case.State.READING, by=by, reason="assigned to readers"
                )
            audit.record(
                "case.assigned",
                actor=by,
                obj=locked,
                project_id=project.pk,
                data={"readers": [u.pk for u in chosen], "due": due.isoformat()},
            )
            report.assigned_tasks += len(chosen)
            report.filled_cases.append(case.code)
        if progress is not None:
            progress(100 * done / max(total, 1))
    return report


def _unfilled_reason(n_readers: int, gated: bool, reasons: dict[str, int]) -> str:
    if n_readers == 0:
        return "no qualified readers" if gated else "no readers in the project"
    parts = [f"{count} excluded ({why})" for why, count in sorted(reasons.items())]
    base = "not enough qualified readers" if gated else "not enough readers"
    return base + (": " + ", ".join(parts) if parts else "")


def enqueue_assignment(project: Project, *, by=None):
    from annotation_server.jobs import services as jobs

    return jobs.enqueue(
        "projects.assign", params={"project_id": project.pk}, project=project, user=by
    )


def reassign_candidates(task) -> list:
    """Readers to whom `task` could move: eligible, not reading the case already."""
    from annotation_server.reading.models import ReadingTask

    case = task.case
    project = case.project
    current = set(
        ReadingTask.objects.operational().filter(case=case).values_list("reader_id", flat=True)
    )
    excluded = _arbitrator_ids(project) | _case_arbitrator_ids([case.pk]).get(case.pk, set())
    return [
        user
        for user in eligible_readers(project)
        if exclusion_reason(
            user,
            case,
            exclude_own_site=project.protocol.exclude_own_site,
            arbitrators=excluded,
            current=current,
        )
        is None
    ]


def reassign_options(project: Project) -> dict[int, list]:
    """For every open read (blind or review phase) of a case in reading: the
    readers it could move to. One pass over the project (the assignment page
    lists them all)."""
    from annotation_server.reading.models import ReadingTask

    tasks = list(
        ReadingTask.objects.operational()
        .filter(case__project=project, case__state=Case.State.READING)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .select_related("case")
    )
    if not tasks:
        return {}
    readers = eligible_readers(project)
    project_arbitrators = _arbitrator_ids(project)
    case_ids = {t.case_id for t in tasks}
    case_arbitrators = _case_arbitrator_ids(case_ids)
    current: dict[int, set[int]] = {}
    for case_id, reader_id in (
        ReadingTask.objects.operational()
        .filter(case_id__in=case_ids)
        .values_list("case_id", "reader_id")
    ):
        current.setdefault(case_id, set()).add(reader_id)
    own_site = project.protocol.exclude_own_site
    options = {}
    for task in tasks:
        excluded = project_arbitrators | case_arbitrators.get(task.case_id, set())
        options[task.pk] = [
            user
            for user in readers
            if exclusion_reason(
                user,
                task.case,
                exclude_own_site=own_site,
                arbitrators=excluded,
                current=current.get(task.case_id, set()),
            )
            is None
        ]
    return options


@transaction.atomic
def reassign(task, new_reader, *, by, reason: str = ""):
    """Move an unsubmitted read to another eligible reader: one who reads nothing
    of the case yet (distinct readers), is not an arbitrator and, if the protocol
    says so, not of the case's site. The dropped reader's draft (findings, case
    labels) is discarded; the move is audited.

    A blind (phase-1) read starts afresh. A review-phase (phase-2) read is the
    review of one blind read: the new reader takes that review over, starting
    from a copy of the departed reader's submitted blind marks (derived_from
    kept, so the provenance shows whose marks were reviewed), and sees the
    other blind reads anonymised as every review-phase reader does. The departed
    reader's blind read stays as it was submitted."""
    from annotation_server.projects.permissions import MANAGE, has_project_perm
    from annotation_server.reading.models import CaseLabel, Finding, ReadingTask

    task = (
        ReadingTask.objects.select_for_update(of=("self",))
        .select_related("case__project")
        .get(pk=task.pk)
    )
    project = task.case.project
    if by is not None and not has_project_perm(by, project, MANAGE):
        raise PermissionDenied("Only the project's dataset managers can reassign reads.")
    if task.attempt_id is not None:
        raise ValidationError(gettext("A qualification read cannot be reassigned."))
    if task.state == ReadingTask.State.SUBMITTED:
        raise ValidationError(gettext("A submitted read cannot be reassigned."))
    if task.case.state != Case.State.READING:
        raise ValidationError(gettext("The case is no longer in reading."))
    if new_reader.pk not in {u.pk for u in reassign_candidates(task)}:
        raise ValidationError(gettext("That person is not an eligible reader for this case."))
    findings = Finding.objects.filter(task=task).count()
    had_labels = CaseLabel.objects.filter(task=task).exists()
    old_reader_id, old_pk, phase = task.reader_id, task.pk, task.phase
    blind = None
    if phase == 2:
        blind = (
            ReadingTask.objects.operational()
            .filter(case=task.case, reader_id=old_reader_id, phase=1)
            .first()
        )
    task.delete()  # findings and case labels go with it (the draft is discarded)
    new = ReadingTask.objects.create(
        case=task.case, reader=new_reader, phase=phase, due_at=_due(project)
    )
    if blind is not None:
        _seed_review(new, blind)
    audit.record(
        "read.reassigned",
        actor=by,
        obj=new,
        project_id=project.pk,
        data={
            "case": task.case.code,
            "phase": phase,
            "from_reader": old_reader_id,
            "to_reader": new_reader.pk,
            "old_task": old_pk,
            "discarded_findings": findings,
            "discarded_case_labels": had_labels,
            "review_of_blind_read": blind.pk if blind is not None else None,
            "reason": reason,
        },
    )
    return new


def _seed_review(review, blind) -> None:
    """Copy a submitted blind read into a review-phase task (as open_review_phase does)."""
    from annotation_server.reading.models import CaseLabel, Finding

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


def overview(project: Project) -> dict:
    """Who reads what: per-reader load and per-case readers with their states."""
    from annotation_server.reading.models import ReadingTask

    now = timezone.now()
    tasks = (
        ReadingTask.objects.operational()
        .filter(case__project=project)
        .select_related("reader__profile", "case")
        .order_by("case__code", "phase", "id")
    )
    per_reader = (
        ReadingTask.objects.operational()
        .filter(case__project=project)
        .values("reader_id")
        .annotate(
            assigned=Count("id", filter=Q(state=ReadingTask.State.ASSIGNED)),
            in_progress=Count("id", filter=Q(state=ReadingTask.State.IN_PROGRESS)),
            submitted=Count("id", filter=Q(state=ReadingTask.State.SUBMITTED)),
            overdue=Count("id", filter=Q(due_at__lt=now) & ~Q(state=ReadingTask.State.SUBMITTED)),
        )
    )
    loads = {r["reader_id"]: r for r in per_reader}
    members = Membership.objects.filter(project=project, role=Role.READER).select_related(
        "user__profile", "user__profile__site"
    )
    gated = qualification_required(project)
    readers = []
    for m in members.order_by("user_id"):
        row = loads.get(m.user_id, {})
        profile = getattr(m.user, "profile", None)
        readers.append(
            {
                "user_id": m.user_id,
                "pseudonym": profile.pseudonym if profile else f"user-{m.user_id}",
                "site": profile.site.code if profile and profile.site else "",
                "qualified": m.qualified,
                "eligible": m.user.is_active and (m.qualified or not gated),
                **{k: row.get(k, 0) for k in ("assigned", "in_progress", "submitted", "overdue")},
            }
        )
    cases: dict[int, dict] = {}
    for t in tasks:
        entry = cases.setdefault(
            t.case_id,
            {
                "case_id": t.case_id,
                "code": t.case.code,
                "state": t.case.state,
                "state_label": Case.State(t.case.state).label,
                "reads": [],
            },
        )
        profile = getattr(t.reader, "profile", None)
        entry["reads"].append(
            {
                "task_id": t.pk,
                "reader_id": t.reader_id,
                "reader": profile.pseudonym if profile else f"user-{t.reader_id}",
                "phase": t.phase,
                "state": t.state,
                "state_label": ReadingTask.State(t.state).label,
                "due_at": t.due_at,
                "overdue": t.is_overdue(now),
            }
        )
    waiting = candidate_cases(project).filter(state=Case.State.QC).count()
    return {
        "qualification_required": gated,
        "readers_per_case": project.protocol.readers_per_case,
        "readers": readers,
        "cases": list(cases.values()),
        "waiting": waiting,
        "failed_qc": Case.objects.filter(
            project=project, is_qualification=False, qc_status=Case.QcStatus.FAIL
        ).count(),
    }
