"""Members of a project: adding people, creating accounts, roles, reader profiles,
deactivation. Every change is one audit event (roles through grant_role /
revoke_role, which audit themselves).

Deactivating a member removes all their roles in the project (their object
permissions go with them: they no longer see it). Their reading and arbitration
tasks stay as they were, listed as open tasks of former members until a manager
reassigns them (the reading app's reassignment).

Accounts created here get either a one-time password, shown once to the manager
and never stored in clear, or an invitation link (accounts.invitations): a signed
token that expires and works once. No mail is sent; the manager passes it on.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext, ngettext

from annotation_server.accounts import invitations
from annotation_server.accounts.models import Role, UserProfile
from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.projects.models import Case, Membership, Project
from annotation_server.projects.services import grant_role, revoke_role

PROFILE_FIELDS = ("specialty", "title", "years_experience", "site")
CONSOLE_ROLES = (Role.READER, Role.ARBITRATOR, Role.MANAGER)


class MemberError(DomainError):
    code = "member_refused"


@dataclass
class Member:
    user: object
    roles: list[str] = field(default_factory=list)
    qualified: bool = False
    invitation_pending: bool = False

    @property
    def profile(self):
        return getattr(self.user, "profile", None)

    @property
    def profile_bits(self) -> list[str]:
        """Specialty, title, years, site: what is filled in, for the members table."""
        p = self.profile
        if p is None:
            return []
        bits = [p.specialty, p.get_title_display() if p.title else ""]
        if p.years_experience is not None:
            bits.append(
                ngettext("%(years)s year", "%(years)s years", p.years_experience)
                % {"years": p.years_experience}
            )
        bits.append(p.site.code if p.site_id else "")
        return [b for b in bits if b]

    @property
    def role_labels(self) -> list[str]:
        return [Role(r).label for r in self.roles]


def members(project: Project) -> list[Member]:
    rows: dict[int, Member] = {}
    for m in (
        Membership.objects.filter(project=project)
        .select_related("user__profile__site")
        .order_by("user__username", "role")
    ):
        member = rows.setdefault(m.user_id, Member(user=m.user))
        member.roles.append(m.role)
        member.qualified = member.qualified or (m.role == Role.READER and m.qualified)
        member.invitation_pending = not m.user.has_usable_password() and m.user.last_login is None
    return list(rows.values())


def member_or_404(project: Project, user_id: int):
    from django.http import Http404

    user = (
        get_user_model()
        .objects.filter(pk=user_id, memberships__project=project)
        .select_related("profile")
        .first()
    )
    if user is None:
        raise Http404(gettext("No such member."))
    return user


def open_tasks(project: Project, user=None) -> dict[str, list]:
    """Open reading tasks (real reads, not submitted) and unsigned arbitration tasks
    of the project, of `user` or (user=None) of people who no longer hold the role
    the task needs. Reached through the cases' reverse relations: reading and
    adjudication sit above projects."""
    reading_task = Case._meta.get_field("reading_tasks").related_model
    arbitration_task = Case._meta.get_field("arbitration_tasks").related_model
    reads = reading_task.objects.filter(case__project=project, attempt__isnull=True).exclude(
        state="submitted"
    )
    arbitrations = arbitration_task.objects.filter(case__project=project).exclude(state="signed")
    if user is not None:
        reads = reads.filter(reader=user)
        arbitrations = arbitrations.filter(arbitrator=user)
    else:
        readers = Membership.objects.filter(project=project, role=Role.READER).values("user_id")
        arbitrators = Membership.objects.filter(project=project, role=Role.ARBITRATOR).values(
            "user_id"
        )
        reads = reads.exclude(Q(reader_id__in=readers))
        arbitrations = arbitrations.exclude(Q(arbitrator_id__in=arbitrators))
    return {
        "reads": list(reads.select_related("case", "reader__profile").order_by("case__code")),
        "arbitrations": list(
            arbitrations.select_related("case", "arbitrator__profile").order_by("case__code")
        ),
    }


def _check_roles(roles) -> list[str]:
    roles = [str(r) for r in roles]
    unknown = [r for r in roles if r not in CONSOLE_ROLES]
    if unknown or not roles:
        raise MemberError(gettext("Choose at least one role: reader, arbitrator or manager."))
    return roles


def _new_pseudonym(roles) -> str:
    prefix = "RD" if Role.READER in roles else "EX"
    n = UserProfile.objects.filter(pseudonym__startswith=prefix).count() + 1
    while UserProfile.objects.filter(pseudonym=f"{prefix}{n:03d}").exists():
        n += 1
    return f"{prefix}{n:03d}"


def _add_profile_roles(user, roles) -> None:
    profile, _ = UserProfile.objects.get_or_create(
        user=user, defaults={"pseudonym": _new_pseudonym(roles), "roles": list(roles)}
    )
    missing = [r for r in roles if r not in profile.roles]
    if missing:
        profile.roles = [*profile.roles, *missing]
        profile.save(update_fields=["roles"])


@transaction.atomic
def add_member(project: Project, user, roles, *, by) -> None:
    if not user.is_active:
        raise MemberError(gettext("This account is deactivated; an administrator can reopen it."))
    roles = _check_roles(roles)
    _add_profile_roles(user, roles)
    for role in roles:
        grant_role(project, user, role, by=by)


@dataclass
class NewAccount:
    user: object
    password: str = ""  # the one-time password, to show once
    invitation_token: str = ""


@transaction.atomic
def create_account(
    project: Project,
    *,
    by,
    username: str,
    roles,
    password_mode: str = "invitation",
    first_name: str = "",
    last_name: str = "",
    email: str = "",
    profile: dict | None = None,
) -> NewAccount:
    """A new person, with a role in this project. `password_mode` "password": a
    one-time password returned here and nowhere else; "invitation": no usable
    password, and a signed link to set one."""
    User = get_user_model()
    roles = _check_roles(roles)
    if User.objects.filter(username__iexact=username).exists():
        raise MemberError(gettext("This username is taken."))
    if password_mode not in ("password", "invitation"):
        raise MemberError(gettext("Choose a one-time password or an invitation link."))
    user = User(username=username, first_name=first_name, last_name=last_name, email=email)
    password = ""
    if password_mode == "password":
        password = secrets.token_urlsafe(12)
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.full_clean(exclude=["password"])
    user.save()
    values = {k: v for k, v in (profile or {}).items() if k in PROFILE_FIELDS}
    UserProfile.objects.create(
        user=user, pseudonym=_new_pseudonym(roles), roles=list(roles), **values
    )
    audit.record(
        "account.created",
        actor=by,
        obj=user,
        project_id=project.pk,
        data={"username": username, "roles": roles, "first_sign_in": password_mode},
    )
    for role in roles:
        grant_role(project, user, role, by=by)
    token = invitations.make_token(user) if password_mode == "invitation" else ""
    return NewAccount(user=user, password=password, invitation_token=token)


@transaction.atomic
def new_invitation(project: Project, user, *, by) -> str:
    """A fresh invitation link for a member who has not set a password yet."""
    if user.has_usable_password() or user.last_login is not None:
        raise MemberError(
            gettext("%(user)s has already set a password; an invitation is not needed.")
            % {"user": user.get_username()}
        )
    audit.record(
        "account.invitation_issued",
        actor=by,
        obj=user,
        project_id=project.pk,
        data={"username": user.get_username()},
    )
    return invitations.make_token(user)


@transaction.atomic
def update_member(project: Project, user, *, by, roles=None, profile: dict | None = None) -> dict:
    """Change a member's roles in this project and their reader profile."""
    changed: dict = {}
    if roles is not None:
        roles = _check_roles(roles)
        held = set(
            Membership.objects.filter(project=project, user=user).values_list("role", flat=True)
        )
        if Role.MANAGER in held and Role.MANAGER not in roles:
            _keep_a_manager(project, user)
        for role in sorted(set(roles) - held):
            grant_role(project, user, role, by=by)
        for role in sorted(held - set(roles)):
            revoke_role(project, user, role, by=by)
        _add_profile_roles(user, roles)
        if set(roles) != held:
            changed["roles"] = [sorted(held), sorted(roles)]
    if profile:
        UserProfile.objects.get_or_create(
            user=user, defaults={"pseudonym": _new_pseudonym(roles or []), "roles": roles or []}
        )
        account = UserProfile.objects.select_for_update().get(user=user)
        diff = {}
        for name in PROFILE_FIELDS:
            if name in profile and getattr(account, name) != profile[name]:
                before = getattr(account, name)
                diff[name] = [
                    getattr(before, "code", before),
                    getattr(profile[name], "code", profile[name]),
                ]
                setattr(account, name, profile[name])
        if diff:
            account.full_clean()
            account.save()
            audit.record(
                "account.profile_updated",
                actor=by,
                obj=account,
                project_id=project.pk,
                data={"user_id": user.pk, "changed": diff},
            )
            changed["profile"] = diff
    return changed


def _keep_a_manager(project: Project, user) -> None:
    others = (
        Membership.objects.filter(project=project, role=Role.MANAGER)
        .exclude(user=user)
        .filter(user__is_active=True)
    )
    if not others.exists():
        raise MemberError(
            gettext("A project needs at least one dataset manager: add another one first.")
        )


@transaction.atomic
def deactivate_member(project: Project, user, *, by, reason: str = "") -> dict[str, list]:
    """Remove every role `user` holds in the project. Returns their open tasks, which
    stay assigned to them until reassigned."""
    held = sorted(
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True)
    )
    if not held:
        raise MemberError(gettext("This person holds no role in the project."))
    if Role.MANAGER in held:
        _keep_a_manager(project, user)
    tasks = open_tasks(project, user)
    for role in held:
        revoke_role(project, user, role, by=by)
    audit.record(
        "project.member_deactivated",
        actor=by,
        obj=user,
        project_id=project.pk,
        data={
            "user_id": user.pk,
            "roles": held,
            "reason": reason,
            "open_reads": [t.pk for t in tasks["reads"]],
            "open_arbitrations": [t.pk for t in tasks["arbitrations"]],
        },
    )
    return tasks
