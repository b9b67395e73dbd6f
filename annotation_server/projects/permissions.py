"""Roles to object permissions (django-guardian), and permission look-ups.

A Membership row is the record of a role; guardian's object permissions are
what every queryset filters on. `sync_object_permissions` keeps them equal.
"""

from __future__ import annotations

from guardian.shortcuts import assign_perm, get_perms, remove_perm

from annotation_server.accounts.models import Role

VIEW = "view_project"
MANAGE = "manage_project"
READ = "read_cases"
ARBITRATE = "arbitrate_cases"
ADMINISTER = "administer_project"

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.MANAGER: frozenset({VIEW, MANAGE}),
    Role.READER: frozenset({VIEW, READ}),
    Role.ARBITRATOR: frozenset({VIEW, ARBITRATE}),
    Role.ADMIN: frozenset({VIEW, MANAGE, ADMINISTER}),
}
ALL_PROJECT_PERMS = frozenset().union(*ROLE_PERMISSIONS.values())


def sync_object_permissions(project, user) -> None:
    """Make user's guardian perms on project equal the union of their roles' perms."""
    roles = project.memberships.filter(user=user).values_list("role", flat=True)
    wanted = frozenset().union(*(ROLE_PERMISSIONS[r] for r in roles)) if roles else frozenset()
    have = set(get_perms(user, project)) & ALL_PROJECT_PERMS
    for perm in wanted - have:
        assign_perm(f"projects.{perm}", user, project)
    for perm in have - wanted:
        remove_perm(f"projects.{perm}", user, project)


def project_ids(user, perm: str) -> set[int]:
    """Ids of projects on which `user` holds `perm` through an object permission.

    One query over guardian's object-permission tables (the user's own rows and
    their groups'), instead of get_objects_for_user's three: every queryset's
    `visible_to` calls this, so it is on the path of each pixel request.
    """
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import GroupObjectPermission, UserObjectPermission

    from annotation_server.projects.models import Project

    if not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return set(Project.objects.values_list("id", flat=True))
    content_type = ContentType.objects.get_for_model(Project)  # cached by Django
    where = {"content_type": content_type, "permission__codename": perm}
    own = UserObjectPermission.objects.filter(user_id=user.pk, **where)
    groups = GroupObjectPermission.objects.filter(group__user=user.pk, **where)
    rows = own.values_list("object_pk", flat=True).union(groups.values_list("object_pk", flat=True))
    return {int(pk) for pk in rows}


def has_project_perm(user, project, perm: str) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.has_perm(f"projects.{perm}", project)


def managed_project_or_404(request, slug: str):
    """The project `slug` for a manager's page or API call. 404 when the user may
    not see it (they need not learn it exists), 403 when they see it but do not
    manage it."""
    from django.core.exceptions import PermissionDenied
    from django.shortcuts import get_object_or_404
    from django.utils.translation import gettext

    from annotation_server.projects.models import Project

    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    if not has_project_perm(request.user, project, MANAGE):
        raise PermissionDenied(gettext("Only the project's dataset managers can do this."))
    return project


# Creating projects is not a role in a project (there is none yet): it is Django's
# model permission "projects.add_project", held by superusers and by the members of
# the group below (an administrator adds dataset managers to it, `manage.py demo`
# adds the demo's manager). A project's creator becomes its dataset manager.
PROJECT_CREATORS_GROUP = "dataset managers"


def can_create_projects(user) -> bool:
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.has_perm("projects.add_project")


def allow_project_creation(user) -> None:
    """Put `user` in the project creators' group (made on first use, with its permission)."""
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=PROJECT_CREATORS_GROUP)
    group.permissions.add(
        Permission.objects.get(content_type__app_label="projects", codename="add_project")
    )
    user.groups.add(group)


def managed_project_or_hide(user, slug: str):
    """The project `slug` for the manager's console (settings, members): 404 for
    everyone who does not manage it, readers and arbitrators of the project included
    (the console shows people and settings they have no business seeing)."""
    from django.http import Http404
    from django.utils.translation import gettext

    from annotation_server.projects.models import Project

    project = Project.objects.filter(id__in=project_ids(user, MANAGE), slug=slug).first()
    if project is None:
        raise Http404(gettext("No such project."))
    return project
