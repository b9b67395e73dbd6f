"""The manager's "Model assistance" page of a project: run an assist model over
the project's cases (a reading.prelabel job on the inference queue, with
progress), and for every model version with proposals here what readers did
with them and how they score against the reference standard
(agreement.assist.project_assistance). Managers only, hidden from anyone who
still holds a blind read of the project, like the agreement figures."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation_server.agreement import services
from annotation_server.agreement.assist import project_assistance
from annotation_server.errors import DomainError
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.reading import assist
from annotation_server.reading.models import AssistModelVersion
from assist_models.registry import BUILTIN_MODELS


def _fits(modality: str, project) -> bool:
    """A model whose card names modalities runs on projects of those only."""

    def codes(text):
        return {m.strip().upper() for m in (text or "").split(",") if m.strip()}

    wanted, has = codes(modality), codes(project.modality)
    return not wanted or not has or bool(wanted & has)


def _choices(project) -> list[tuple[str, str]]:
    """(value, label) of what may run on the project's modality: every registered
    version, and the built-in models not registered yet (their committed weights)."""
    from assist_models.registry import ModelRegistry

    out, names = [], set()
    for row in AssistModelVersion.objects.order_by("name", "-registered_at"):
        names.add(row.name)
        if not _fits((row.card or {}).get("modality", ""), project):
            continue
        label = f"{row.name} {row.version}"
        if row.promoted:
            label += " · " + _("promoted")
        out.append((f"{row.name}|{row.version}", label))
    registry = ModelRegistry()
    for name in sorted(set(BUILTIN_MODELS) - names):
        if _fits(registry.card(name).modality, project):
            out.append((f"{name}|", f"{name} · " + _("built in")))
    return out


def _jobs(project):
    return Job.objects.filter(project=project, kind="reading.prelabel").order_by("-created_at")[:5]


@login_required
def assistance_page(request, slug: str):
    project = services.project_for_figures(request, slug)
    jobs = list(_jobs(project))
    context = {
        "project": project,
        "protocol": getattr(project, "protocol", None),
        "versions": project_assistance(project),
        "choices": _choices(project),
        "jobs": jobs,
        "running": any(j.state not in Job.FINISHED for j in jobs),
        "cases": Case.objects.filter(
            project=project, series__isnull=False, is_qualification=False
        ).count(),
    }
    return render(request, "agreement/assistance.html", context)


@login_required
@require_POST
def run_model(request, slug: str):
    project = services.project_for_figures(request, slug)
    name, _sep, version = request.POST.get("model", "").partition("|")
    threshold = request.POST.get("threshold", "").strip()
    codes = [c for c in request.POST.get("cases", "").replace(",", " ").split() if c]
    try:
        row = assist.resolve_version(name, version or None, by=request.user)
        case_ids = None
        if codes:
            found = dict(
                Case.objects.filter(project=project, code__in=codes).values_list("code", "pk")
            )
            unknown = sorted(set(codes) - set(found))
            if unknown:
                raise assist.AssistError(
                    _("No such case in this project: %(codes)s") % {"codes": ", ".join(unknown)}
                )
            case_ids = list(found.values())
        value = None
        if threshold:
            try:
                value = float(threshold)
            except ValueError:
                raise assist.AssistError(_("A threshold lies between 0 and 1.")) from None
        job = assist.queue_prelabel(
            project, row, by=request.user, case_ids=case_ids, threshold=value
        )
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            _("%(model)s %(version)s queued on the inference queue (job %(job)s).")
            % {"model": row.name, "version": row.version, "job": job.pk},
        )
    return redirect("assistance", slug=slug)
