"""The manager's console actions of the reading app, as pages (forms that post
and come back) and REST: withdraw a case from reading, return it to reading.
Managers of the project only; everyone else gets 404."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_hide
from annotation_server.reading import console


def back(request, slug: str):
    """Where a console form returns: its `next` when it is a local URL, else the overview."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(reverse("projects:project_overview", args=[slug]))


@login_required
@require_POST
def withdraw(request, slug: str, case_id: int):
    project = managed_project_or_hide(request.user, slug)
    case = get_object_or_404(Case, pk=case_id, project=project)
    try:
        console.withdraw_case(case, by=request.user, reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("Case %(case)s was withdrawn from reading; its reads are kept.")
            % {"case": case.code},
        )
    return back(request, slug)


@login_required
@require_POST
def return_to_reading(request, slug: str, case_id: int):
    project = managed_project_or_hide(request.user, slug)
    case = get_object_or_404(Case, pk=case_id, project=project)
    try:
        case = console.return_to_reading(
            case, by=request.user, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request, _("Case %(case)s is back in the reading workflow.") % {"case": case.code}
        )
    return back(request, slug)
