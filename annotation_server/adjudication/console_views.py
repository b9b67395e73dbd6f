"""The manager's console pages of the adjudication app: a case's reference
standard (with reopen), settling a case by force and moving an arbitration task
to another arbitrator. Managers of the project only; everyone else gets 404.
The forms post and come back (to `next`, or the project overview)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from annotation_server.adjudication import console
from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.adjudication.services import arbitration
from annotation_server.adjudication.services import console as services
from annotation_server.adjudication.services.common import ArbitrationError, SettleError
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_hide
from annotation_server.projects.services import TransitionError
from annotation_server.reading.console_views import back


def _case(request, slug: str, case_id: int) -> Case:
    project = managed_project_or_hide(request.user, slug)
    return get_object_or_404(
        Case.objects.select_related("project__protocol"), pk=case_id, project=project
    )


@never_cache
@login_required
def reference_page(request, slug: str, case_id: int):
    case = _case(request, slug, case_id)
    return render(
        request,
        "adjudication/reference.html",
        {
            "project": case.project,
            "case": case,
            "data": console.reference_standard(case, request.user),
        },
    )


@login_required
@require_POST
def reopen(request, slug: str, case_id: int):
    case = _case(request, slug, case_id)
    keys = request.POST.getlist("ref_key")
    clusters = console.clusters_for_ref_keys(case, keys)
    if not clusters:
        messages.error(request, _("Choose the reference findings to reopen."))
        return back(request, slug)
    try:
        tasks = arbitration.reopen(
            case,
            by=request.user,
            reason=request.POST.get("reason", ""),
            clusters=clusters,
            labels=[],
        )
    except (ValidationError, TransitionError, ArbitrationError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))
    else:
        messages.success(
            request,
            _("Case %(case)s is back in arbitration (round %(round)s).")
            % {"case": case.code, "round": tasks[0].round if tasks else "?"},
        )
    return back(request, slug)


@login_required
@require_POST
def force_settle(request, slug: str, case_id: int):
    case = _case(request, slug, case_id)
    try:
        settlement = services.force_settle(
            case, by=request.user, reason=request.POST.get("reason", "")
        )
    except (ValidationError, SettleError, ArbitrationError, TransitionError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))
    else:
        messages.success(
            request,
            _("Case %(case)s was settled: %(outcome)s.")
            % {"case": case.code, "outcome": settlement.get_outcome_display()},
        )
    return back(request, slug)


@login_required
@require_POST
def reassign_arbitration(request, slug: str, task_id: int):
    project = managed_project_or_hide(request.user, slug)
    task = get_object_or_404(ArbitrationTask, pk=task_id, case__project=project)
    person = get_user_model().objects.filter(pk=request.POST.get("arbitrator") or 0).first()
    if person is None:
        messages.error(request, _("Choose the arbitrator who takes the task over."))
        return back(request, slug)
    try:
        services.reassign_arbitration(
            task, person, by=request.user, reason=request.POST.get("reason", "")
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("The %(role)s task of case %(case)s now goes to %(person)s.")
            % {
                "role": task.get_role_display(),
                "case": task.case.code,
                "person": person.profile.pseudonym,
            },
        )
    return back(request, slug)
