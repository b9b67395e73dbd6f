"""Project workflows: creation, roles, the case life cycle, progress counts."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.projects.models import Case, Membership, Project, ReadingProtocol


class TransitionError(DomainError):
    """The case cannot move to that state from where it is."""

    code = "invalid_transition"


@transaction.atomic
def create_project(
    *, slug, name, label_schema, task_type, modality, user=None, protocol=None, **fields
) -> Project:
    project = Project(
        slug=slug,
        name=name,
        label_schema=label_schema,
        task_type=task_type,
        modality=modality,
        created_by=user,
        **fields,
    )
    project.full_clean()
    project.save()
    proto = ReadingProtocol(project=project, **(protocol or {}))
    proto.full_clean()
    proto.save()
    audit.record(
        "project.created",
        actor=user,
        obj=project,
        project_id=project.pk,
        data={"slug": slug, "schema": str(label_schema), "protocol": protocol or {}},
    )
    return project


@transaction.atomic
def grant_role(project: Project, user, role: str, *, by=None) -> Membership:
    membership, created = Membership.objects.get_or_create(project=project, user=user, role=role)
    if created:
        audit.record(
            "project.role_granted",
            actor=by,
            obj=membership,
            project_id=project.pk,
            data={"user_id": user.pk, "role": role},
        )
    return membership


@transaction.atomic
def revoke_role(project: Project, user, role: str, *, by=None) -> None:
    for membership in Membership.objects.filter(project=project, user=user, role=role):
        membership.delete()
        audit.record(
            "project.role_revoked",
            actor=by,
            project_id=project.pk,
            data={"user_id": user.pk, "role": role},
        )


@transaction.atomic
def transition(case: Case, to: str, *, by=None, reason: str = "") -> Case:
    """Move a case along its life cycle; refuses illegal moves and lost races."""
    if not case.can_transition(to):
        raise TransitionError(
            gettext("Case %(case)s cannot go from %(from)s to %(to)s.")
            % {"case": case, "from": case.state, "to": to}
        )
    readable = (Case.QcStatus.PASS, Case.QcStatus.WARN, Case.QcStatus.OVERRIDDEN)
    if case.state == Case.State.QC and to == Case.State.READING and case.qc_status not in readable:
        raise TransitionError(
            gettext("Case %(case)s has QC status %(status)s: it must pass QC or be overridden.")
            % {"case": case, "status": case.qc_status}
        )
    changed = Case.objects.filter(pk=case.pk, state=case.state, version=case.version).update(
        state=to, state_changed_at=timezone.now(), version=case.version + 1
    )
    if changed != 1:
        raise TransitionError(
            gettext("Case %(case)s was changed by someone else; reload and retry.") % {"case": case}
        )
    audit.record(
        "case.state_changed",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={"from": case.state, "to": to, "reason": reason},
    )
    case.refresh_from_db()
    return case


def case_state_counts(project_ids) -> dict[int, dict[str, int]]:
    """{project_id: {state: n, ..., 'total': n}} for the given projects (real cases only)."""
    counts: dict[int, dict[str, int]] = {pid: {"total": 0} for pid in project_ids}
    rows = (
        Case.objects.filter(project_id__in=project_ids, is_qualification=False)
        .values("project_id", "state")
        .annotate(n=Count("id"))
    )
    for row in rows:
        bucket = counts[row["project_id"]]
        bucket[row["state"]] = row["n"]
        bucket["total"] += row["n"]
    return counts


def reader_task_counts(user, project_ids) -> dict[int, dict[str, int]]:
    """A reader's own task counts per project: only their own, never others', and
    only real reads (not qualification attempts). Reached through the cases'
    reverse relation: projects sits below reading and does not import it."""
    own = Q(reading_tasks__reader=user, reading_tasks__attempt__isnull=True)
    rows = (
        Case.objects.filter(project_id__in=project_ids)
        .filter(own)
        .values("project_id")
        .annotate(
            total=Count("reading_tasks"),
            submitted=Count("reading_tasks", filter=Q(reading_tasks__state="submitted")),
        )
    )
    return {r["project_id"]: {"total": r["total"], "submitted": r["submitted"]} for r in rows}
