"""Project workflows: creation, roles, the case life cycle, progress counts."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.projects.models import (
    Case,
    LabelSchema,
    Membership,
    Project,
    ReadingProtocol,
)


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


# ---------------------------------------------------------------- project set-up
# The manager's console (pages and REST) calls these; each change is one audit
# event carrying what changed (before -> after).


class SetupError(DomainError):
    """A set-up change the project's state does not allow."""

    code = "setup_refused"


PROJECT_FIELDS = (
    "name",
    "slug",
    "description",
    "task_type",
    "status",
    "modality",
    "body_part",
    "deid_clean_descriptors",
    "deid_shift_dates",
)
PROTOCOL_FIELDS = (
    "readers_per_case",
    "review_phase",
    "blind",
    "exclude_own_site",
    "match_rule",
    "match_threshold",
    "size_tolerance_mm",
    "auto_accept_min_readers",
    "auto_accept_same_type",
    "auto_accept_ordinal_tolerance",
    "drop_below_readers",
    "grade_rule",
    "grade_difference",
    "consensus_method",
    "arbitration_mode",
    "prelabel_visibility",
    "prelabel_min_confidence",
    "unassisted_fraction",
    "unassisted_seed",
    "reading_days",
    "writeback_reads",
)
RESERVED_SLUGS = frozenset({"new", "api", "invitations", "sites"})
SITE_FIELDS = ("code", "name", "site_type", "region")


def _changes(obj, values: dict, names) -> dict:
    out = {}
    for name in names:
        if name in values and getattr(obj, name) != values[name]:
            out[name] = [getattr(obj, name), values[name]]
    return out


def has_reads(project: Project) -> bool:
    """True once any real read of the project exists (the schema is then fixed)."""
    return Case.objects.filter(project=project, reading_tasks__isnull=False).exists()


def check_slug(slug: str, *, project: Project | None = None) -> None:
    from django.core.exceptions import ValidationError

    if slug in RESERVED_SLUGS:
        raise ValidationError({"slug": gettext("This slug is reserved; choose another.")})
    if project is not None and slug != project.slug and project.cases.exists():
        raise ValidationError(
            {"slug": gettext("The slug cannot change once the project has cases.")}
        )


@transaction.atomic
def create_project_by(
    user, *, values: dict, protocol: dict, sites=(), label_schema: LabelSchema
) -> Project:
    """A project made from the console: its creator becomes its dataset manager."""
    from annotation_server.accounts.models import Role

    check_slug(values["slug"])
    project = create_project(
        user=user,
        label_schema=label_schema,
        protocol=protocol,
        **{k: v for k, v in values.items() if k in PROJECT_FIELDS},
    )
    if sites:
        project.sites.set(sites)
    grant_role(project, user, Role.MANAGER, by=user)
    return project


@transaction.atomic
def update_project(project: Project, *, by, values: dict, sites=None) -> dict:
    """Change the project's own fields (and its sites); audits what changed."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    if "slug" in values:
        check_slug(values["slug"], project=project)
    changed = _changes(project, values, PROJECT_FIELDS)
    for name, (_before, after) in changed.items():
        setattr(project, name, after)
    if sites is not None:
        before = sorted(project.sites.values_list("code", flat=True))
        after = sorted(s.code for s in sites)
        if before != after:
            changed["sites"] = [before, after]
    if not changed:
        return {}
    project.full_clean(exclude=["label_schema", "qc_profile"])
    project.save()
    if sites is not None:
        project.sites.set(sites)
    audit.record(
        "project.updated", actor=by, obj=project, project_id=project.pk, data={"changed": changed}
    )
    return changed


@transaction.atomic
def update_protocol(project: Project, *, by, values: dict) -> dict:
    protocol = ReadingProtocol.objects.select_for_update().get(project=project)
    changed = _changes(protocol, values, PROTOCOL_FIELDS)
    if not changed:
        return {}
    for name, (_before, after) in changed.items():
        setattr(protocol, name, after)
    protocol.full_clean()
    protocol.save()
    audit.record(
        "project.protocol_updated",
        actor=by,
        obj=protocol,
        project_id=project.pk,
        data={"changed": changed},
    )
    return changed


def _next_version(key: str) -> int:
    latest = LabelSchema.objects.filter(key=key).order_by("-version").first()
    return latest.version + 1 if latest else 1


@transaction.atomic
def new_label_schema(*, key: str, name: str, definition, by, project: Project | None = None):
    """Store a schema as a new version of `key` (version 1 for a new key). Schemas are
    never edited in place: a changed definition is always a new row."""
    from annotation_server.projects import schema as schema_rules

    schema_rules.validate_definition(definition)
    schema = LabelSchema.objects.create(
        key=key, version=_next_version(key), name=name, definition=definition
    )
    audit.record(
        "label_schema.created",
        actor=by,
        obj=schema,
        project_id=project.pk if project else None,
        data={"key": key, "version": schema.version, "name": name},
    )
    return schema


@transaction.atomic
def set_label_schema(project: Project, schema: LabelSchema, *, by) -> None:
    """Point the project at another schema (version); refused once reads exist, as
    every read's findings were checked against the schema they were made with."""
    project = Project.objects.select_for_update().get(pk=project.pk)
    if project.label_schema_id == schema.pk:
        return
    if has_reads(project):
        raise SetupError(
            gettext(
                "Cases of this project are already read with %(schema)s: the schema cannot "
                "change. Start a new project (or dataset version) for the new schema."
            )
            % {"schema": project.label_schema}
        )
    before = str(project.label_schema)
    project.label_schema = schema
    project.save(update_fields=["label_schema"])
    audit.record(
        "project.schema_changed",
        actor=by,
        obj=project,
        project_id=project.pk,
        data={"from": before, "to": str(schema), "schema_id": schema.pk},
    )


@transaction.atomic
def save_qc_profile(project: Project, profile: dict, *, by) -> bool:
    """Store the project's QC profile (Project.save bumps its version when it
    changed); validated by qc.Profile first. True when it changed."""
    from django.core.exceptions import ValidationError

    import qc

    try:
        qc.Profile.from_dict(profile)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            gettext("The QC profile is invalid: %(error)s") % {"error": exc}
        ) from None
    project = Project.objects.select_for_update().get(pk=project.pk)
    if project.qc_profile == profile:
        return False
    before, version = project.qc_profile, project.qc_profile_version
    project.qc_profile = profile
    project.save(update_fields=["qc_profile"])
    audit.record(
        "project.qc_profile_updated",
        actor=by,
        obj=project,
        project_id=project.pk,
        data={
            "from": before,
            "to": profile,
            "version": [version, project.qc_profile_version],
        },
    )
    return True


@transaction.atomic
def create_site(*, by, values: dict):
    """A contributing institution, made from the console by someone who may create
    projects (sites are shared by every project; exports show only the code)."""
    from annotation_server.accounts.models import Site

    site = Site(**{k: v for k, v in values.items() if k in SITE_FIELDS})
    site.full_clean()
    site.save()
    audit.record(
        "site.created",
        actor=by,
        obj=site,
        data={k: getattr(site, k) for k in SITE_FIELDS},
    )
    return site
