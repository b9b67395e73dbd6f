"""The manager's console, set-up part: the project list, creating and editing a
project (fields, reading protocol, de-identification), its label schema, its QC
profile and its members, and the invitation page an invitee opens.

Permissions: every page of a project is for its dataset managers only; anyone
else (its readers and arbitrators included) gets 404 (`managed_project_or_hide`).
Creating a project needs the global permission "projects.add_project"
(permissions.can_create_projects), and so does adding a contributing site (sites
are shared by every project). Every change goes through services.py or
members.py, which audit it; domain errors become pages through the middleware.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from annotation_server.accounts.invitations import lifetime, user_for_token
from annotation_server.accounts.models import Site
from annotation_server.audit import services as audit
from annotation_server.projects import members as member_services
from annotation_server.projects import services
from annotation_server.projects.forms import (
    AddMemberForm,
    CreateAccountForm,
    ProjectForm,
    ProtocolForm,
    QcProfileForm,
    ReaderProfileForm,
    SchemaChoiceForm,
    SchemaVersionForm,
    SiteForm,
)
from annotation_server.projects.models import LabelSchema, Project, ReadingProtocol
from annotation_server.projects.permissions import (
    MANAGE,
    can_create_projects,
    managed_project_or_hide,
    project_ids,
)


def overview_url(project: Project) -> str:
    """The project's own page when the overview exists, else its settings."""
    try:
        return reverse("projects:project_overview", args=[project.slug])
    except NoReverseMatch:
        return reverse("projects:project_edit", args=[project.slug])


def reassign_action(project: Project, task) -> str | None:
    """Where the reassignment of an open task is posted (the reading app's form for a
    read, the adjudication app's for an arbitration), if those routes exist."""
    name = "assignments-reassign" if hasattr(task, "reader_id") else "arbitration-reassign"
    try:
        return reverse(name, args=[project.slug, task.pk])
    except NoReverseMatch:
        return None


def _with_reassignment(project: Project, tasks: dict) -> dict:
    """Each open task with its form's action and the people who may take it over
    (current readers / arbitrators of the project; the service checks the rest:
    distinct readers, blindness, own site)."""
    from annotation_server.accounts.models import Role

    people = {
        role: list(
            project.memberships.filter(role=role, user__is_active=True)
            .select_related("user__profile")
            .order_by("user__username")
        )
        for role in (Role.READER, Role.ARBITRATOR)
    }
    for task in tasks["reads"]:
        task.reassign_action = reassign_action(project, task)
        task.candidates = [m.user for m in people[Role.READER] if m.user_id != task.reader_id]
    for task in tasks["arbitrations"]:
        task.reassign_action = reassign_action(project, task)
        task.candidates = [
            m.user for m in people[Role.ARBITRATOR] if m.user_id != task.arbitrator_id
        ]
    return tasks


def _apply_validation_error(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for name, errors in exc.message_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def _protocol_values(form) -> dict:
    return {name: form.cleaned_data[name] for name in form.Meta.fields}


def _project_values(form) -> dict:
    return {name: form.cleaned_data[name] for name in form.Meta.fields if name in form.cleaned_data}


# ------------------------------------------------------------------ projects


@login_required
def project_list(request):
    managed = project_ids(request.user, MANAGE)
    projects = (
        Project.objects.filter(id__in=managed)
        .select_related("label_schema", "protocol")
        .prefetch_related("sites")
        .order_by("name")
    )
    rows = [{"project": p, "overview": overview_url(p)} for p in projects]
    return render(
        request,
        "projects/project_list.html",
        {"rows": rows, "can_create": can_create_projects(request.user)},
    )


@login_required
def sites(request):
    """The contributing institutions, and a form to add one: for those who may
    create projects (a project's sites, its delivering sites and its readers' sites
    are chosen from these)."""
    if not can_create_projects(request.user):
        raise PermissionDenied(_("Adding sites needs the dataset managers' permission."))
    form = SiteForm(request.POST if request.method == "POST" else None, prefix="site")
    if request.method == "POST" and form.is_valid():
        try:
            site = services.create_site(by=request.user, values=form.cleaned_data)
        except ValidationError as exc:
            _apply_validation_error(form, exc)
        else:
            messages.success(request, _("Site %(code)s added.") % {"code": site.code})
            return redirect("projects:sites")
    rows = Site.objects.annotate(project_count=Count("projects", distinct=True)).order_by("code")
    return render(
        request,
        "projects/sites.html",
        {"sites": rows, "form": form},
        status=400 if form.is_bound else 200,
    )


@login_required
def project_create(request):
    if not can_create_projects(request.user):
        raise PermissionDenied(_("Creating projects needs the dataset managers' permission."))
    post = request.POST if request.method == "POST" else None
    project_form = ProjectForm(post, prefix="project")
    protocol_form = ProtocolForm(post, prefix="protocol", instance=ReadingProtocol())
    schema_form = SchemaChoiceForm(post, request.FILES or None, prefix="schema")
    if post is not None and all(f.is_valid() for f in (project_form, protocol_form, schema_form)):
        try:
            with transaction.atomic():
                if schema_form.cleaned_data["source"] == "existing":
                    schema = schema_form.cleaned_data["existing"]
                else:
                    schema = services.new_label_schema(
                        key=schema_form.cleaned_data["key"],
                        name=schema_form.cleaned_data["name"],
                        definition=schema_form.cleaned_data["definition"],
                        by=request.user,
                    )
                project = services.create_project_by(
                    request.user,
                    values=_project_values(project_form),
                    protocol=_protocol_values(protocol_form),
                    sites=project_form.cleaned_data["sites"],
                    label_schema=schema,
                )
        except ValidationError as exc:
            target = (
                protocol_form
                if any(k in protocol_form.fields for k in getattr(exc, "error_dict", {}))
                else project_form
            )
            _apply_validation_error(target, exc)
        else:
            messages.success(
                request,
                _("Project %(name)s created. Next: its QC profile and its members.")
                % {"name": project.name},
            )
            return redirect("projects:project_members", slug=project.slug)
    if post is None:
        schema_form.fields["existing"].initial = LabelSchema.objects.order_by(
            "key", "-version"
        ).first()
    return render(
        request,
        "projects/project_form.html",
        {
            "project_form": project_form,
            "protocol_form": protocol_form,
            "schema_form": schema_form,
            "creating": True,
        },
        status=400 if post is not None else 200,
    )


@login_required
def project_edit(request, slug: str):
    project = managed_project_or_hide(request.user, slug)
    post = request.POST if request.method == "POST" else None
    project_form = ProjectForm(post, prefix="project", instance=project)
    protocol_form = ProtocolForm(post, prefix="protocol", instance=project.protocol)
    if post is not None and project_form.is_valid() and protocol_form.is_valid():
        try:
            with transaction.atomic():
                values = _project_values(project_form)
                if project_form.fields["slug"].disabled:
                    values.pop("slug", None)
                changed = services.update_project(
                    project,
                    by=request.user,
                    values=values,
                    sites=project_form.cleaned_data["sites"],
                )
                changed |= services.update_protocol(
                    project, by=request.user, values=_protocol_values(protocol_form)
                )
        except ValidationError as exc:
            target = (
                protocol_form
                if any(k in protocol_form.fields for k in getattr(exc, "error_dict", {}))
                else project_form
            )
            _apply_validation_error(target, exc)
        else:
            if changed:
                messages.success(request, _("Project settings saved."))
            else:
                messages.info(request, _("Nothing changed."))
            project.refresh_from_db()
            return redirect("projects:project_edit", slug=project.slug)
    project.refresh_from_db()
    return render(
        request,
        "projects/project_form.html",
        {
            "project": project,
            "project_form": project_form,
            "protocol_form": protocol_form,
            "overview": overview_url(project),
            "creating": False,
        },
        status=400 if post is not None else 200,
    )


# ------------------------------------------------------------------ schema


@login_required
def project_schema(request, slug: str):
    """The project's label schema: what it defines, and changing it (another stored
    or shipped schema, an upload, or a new version of the current one)."""
    project = managed_project_or_hide(request.user, slug)
    current = project.label_schema
    locked = services.has_reads(project)
    choice_form = SchemaChoiceForm(prefix="schema", initial={"existing": current})
    version_form = SchemaVersionForm(
        prefix="version",
        initial={"name": current.name, "definition": _pretty(current.definition)},
    )
    status = 200
    if request.method == "POST":
        status = 400
        if request.POST.get("form") == "version":
            version_form = SchemaVersionForm(request.POST, prefix="version")
            if version_form.is_valid():
                with transaction.atomic():
                    schema = services.new_label_schema(
                        key=current.key,
                        name=version_form.cleaned_data["name"],
                        definition=version_form.cleaned_data["definition"],
                        by=request.user,
                        project=project,
                    )
                    if not locked:
                        services.set_label_schema(project, schema, by=request.user)
                if locked:
                    messages.warning(
                        request,
                        _(
                            "%(schema)s saved. This project keeps %(current)s because its "
                            "cases are already being read; new projects can use the new version."
                        )
                        % {"schema": schema, "current": current},
                    )
                else:
                    messages.success(
                        request, _("The project now uses %(schema)s.") % {"schema": schema}
                    )
                return redirect("projects:project_schema", slug=project.slug)
        else:
            choice_form = SchemaChoiceForm(request.POST, request.FILES, prefix="schema")
            if choice_form.is_valid():
                with transaction.atomic():
                    if choice_form.cleaned_data["source"] == "existing":
                        schema = choice_form.cleaned_data["existing"]
                    else:
                        schema = services.new_label_schema(
                            key=choice_form.cleaned_data["key"],
                            name=choice_form.cleaned_data["name"],
                            definition=choice_form.cleaned_data["definition"],
                            by=request.user,
                            project=project,
                        )
                    services.set_label_schema(project, schema, by=request.user)
                messages.success(
                    request, _("The project now uses %(schema)s.") % {"schema": schema}
                )
                return redirect("projects:project_schema", slug=project.slug)
    return render(
        request,
        "projects/project_schema.html",
        {
            "project": project,
            "schema": current,
            "finding_types": _finding_types(current),
            "locked": locked,
            "choice_form": choice_form,
            "version_form": version_form,
            "versions": LabelSchema.objects.filter(key=current.key).order_by("-version"),
            "overview": overview_url(project),
        },
        status=status,
    )


def _finding_types(schema) -> list[dict]:
    from django.utils.translation import get_language

    lang = "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"
    out = []
    for ftype in schema.definition.get("finding_types", []):
        label = ftype.get("label") or {}
        out.append({**ftype, "title": label.get(lang) or label.get("en") or ftype.get("key")})
    return out


def _pretty(definition) -> str:
    import json

    return json.dumps(definition, ensure_ascii=False, indent=2)


# ------------------------------------------------------------------ QC profile


@login_required
def project_qc_profile(request, slug: str):
    project = managed_project_or_hide(request.user, slug)
    form = QcProfileForm(project, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            changed = services.save_qc_profile(project, form.profile(), by=request.user)
        except ValidationError as exc:
            _apply_validation_error(form, exc)
        else:
            project.refresh_from_db()
            if changed:
                messages.success(
                    request,
                    _("QC profile saved as version %(version)s. Re-run QC to apply it to cases.")
                    % {"version": project.qc_profile_version},
                )
            else:
                messages.info(request, _("Nothing changed."))
            return redirect("projects:project_qc_profile", slug=project.slug)
    try:
        qc_page = reverse("qc", args=[project.slug])
    except NoReverseMatch:
        qc_page = None
    return render(
        request,
        "projects/project_qc_profile.html",
        {
            "project": project,
            "form": form,
            "defaults": form.defaults,
            "qc_page": qc_page,
            "overview": overview_url(project),
        },
        status=400 if request.method == "POST" else 200,
    )


# ------------------------------------------------------------------ members


def _members_context(project, **extra):
    former = _with_reassignment(project, member_services.open_tasks(project))
    return {
        "project": project,
        "members": member_services.members(project),
        "former_tasks": former,
        "overview": overview_url(project),
        "invitation_days": lifetime().days,
        **extra,
    }


@login_required
def project_members(request, slug: str):
    project = managed_project_or_hide(request.user, slug)
    add_form = AddMemberForm(prefix="add")
    create_form = CreateAccountForm(prefix="new")
    if request.method == "POST":
        which = request.POST.get("form")
        if which == "add":
            add_form = AddMemberForm(request.POST, prefix="add")
            if add_form.is_valid():
                user = add_form.cleaned_data["user"]
                member_services.add_member(
                    project, user, add_form.cleaned_data["roles"], by=request.user
                )
                messages.success(
                    request, _("%(user)s added to the project.") % {"user": user.get_username()}
                )
                return redirect("projects:project_members", slug=project.slug)
        elif which == "create":
            create_form = CreateAccountForm(request.POST, prefix="new")
            if create_form.is_valid():
                data = create_form.cleaned_data
                account = member_services.create_account(
                    project,
                    by=request.user,
                    username=data["username"],
                    roles=data["roles"],
                    password_mode=data["password_mode"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    email=data["email"],
                    profile={
                        "specialty": data["specialty"],
                        "title": data["title"],
                        "years_experience": data["years_experience"],
                        "site": data["site"],
                    },
                )
                return _show_credentials(request, project, account.user, account)
        return render(
            request,
            "projects/project_members.html",
            _members_context(project, add_form=add_form, create_form=create_form),
            status=400,
        )
    return render(
        request,
        "projects/project_members.html",
        _members_context(project, add_form=add_form, create_form=create_form),
    )


def _show_credentials(request, project, user, account):
    """The one page that shows a one-time password or an invitation link: answered
    to the POST itself (never stored, never in a redirect's URL)."""
    link = ""
    if account.invitation_token:
        link = request.build_absolute_uri(
            reverse("projects:accept_invitation", args=[account.invitation_token])
        )
    response = render(
        request,
        "projects/member_credentials.html",
        {
            "project": project,
            "invitee": user,
            "password": account.password,
            "link": link,
            "invitation_days": lifetime().days,
            "overview": overview_url(project),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
def project_member(request, slug: str, user_id: int):
    """One member: roles in this project, reader profile, invitation, deactivation."""
    project = managed_project_or_hide(request.user, slug)
    user = member_services.member_or_404(project, user_id)
    profile = getattr(user, "profile", None)
    roles = list(project.memberships.filter(user=user).values_list("role", flat=True))
    profile_form = ReaderProfileForm(
        request.POST if request.method == "POST" else None, instance=profile, prefix="profile"
    )
    from annotation_server.projects.forms import MEMBER_ROLES

    if request.method == "POST" and profile_form.is_valid():
        chosen = request.POST.getlist("roles")
        changed = member_services.update_member(
            project,
            user,
            by=request.user,
            roles=chosen,
            profile={k: profile_form.cleaned_data[k] for k in profile_form.Meta.fields},
        )
        messages.success(request, _("Member saved.") if changed else _("Nothing changed."))
        return redirect("projects:project_member", slug=project.slug, user_id=user.pk)
    tasks = _with_reassignment(project, member_services.open_tasks(project, user))
    return render(
        request,
        "projects/project_member.html",
        {
            "project": project,
            "member": user,
            "roles": roles,
            "role_choices": MEMBER_ROLES,
            "profile_form": profile_form,
            "tasks": tasks,
            "invitation_pending": not user.has_usable_password() and user.last_login is None,
            "overview": overview_url(project),
        },
        status=400 if request.method == "POST" else 200,
    )


@login_required
@require_POST
def project_member_deactivate(request, slug: str, user_id: int):
    project = managed_project_or_hide(request.user, slug)
    user = member_services.member_or_404(project, user_id)
    tasks = member_services.deactivate_member(
        project, user, by=request.user, reason=request.POST.get("reason", "").strip()
    )
    n = len(tasks["reads"]) + len(tasks["arbitrations"])
    if n:
        messages.warning(
            request,
            ngettext(
                "%(user)s no longer has a role in this project. Their %(n)s open task is "
                "listed below under “Open tasks of former members”: reassign it.",
                "%(user)s no longer has a role in this project. Their %(n)s open tasks are "
                "listed below under “Open tasks of former members”: reassign them.",
                n,
            )
            % {"user": user.get_username(), "n": n},
        )
    else:
        messages.success(
            request,
            _("%(user)s no longer has a role in this project.") % {"user": user.get_username()},
        )
    return redirect("projects:project_members", slug=project.slug)


@login_required
@require_POST
def project_member_invitation(request, slug: str, user_id: int):
    project = managed_project_or_hide(request.user, slug)
    user = member_services.member_or_404(project, user_id)
    token = member_services.new_invitation(project, user, by=request.user)
    return _show_credentials(
        request, project, user, member_services.NewAccount(user=user, invitation_token=token)
    )


# ------------------------------------------------------------------ invitations


@never_cache
@sensitive_post_parameters("new_password1", "new_password2")
def accept_invitation(request, token: str):
    """Open to anyone holding the link: the signed token is the credential. A broken
    or used link answers 404, an expired one 410 (domain-error page)."""
    user = user_for_token(token)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.save()
            audit.record("account.invitation_accepted", actor=user, obj=user, data={})
        messages.success(request, _("Your password is set. Sign in with it now."))
        return redirect("login")
    return render(
        request,
        "projects/accept_invitation.html",
        {"form": form, "invitee": user},
        status=400 if request.method == "POST" else 200,
    )
