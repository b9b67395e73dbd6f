"""The manager's assist-model page: the project's model versions with their
held-out comparisons, a fine-tune button and a promote button per version
(forms that post and come back; reading.finetune does the work)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation_server.projects.permissions import managed_project_or_404
from annotation_server.reading import finetune


@login_required
def assist_models_page(request, slug: str):
    project = managed_project_or_404(request, slug)
    return render(
        request,
        "reading/assist_models.html",
        {
            "project": project,
            "versions": finetune.project_versions(project),
            "finetunable": sorted(finetune.FINETUNABLE),
            "default_epochs": finetune.DEFAULT_EPOCHS,
            "max_epochs": finetune.MAX_EPOCHS,
            "jobs": finetune.recent_jobs(project),
        },
    )


@login_required
@require_POST
def finetune_run(request, slug: str):
    project = managed_project_or_404(request, slug)
    model = request.POST.get("model", "")
    try:
        epochs = int(request.POST.get("epochs") or finetune.DEFAULT_EPOCHS)
    except ValueError:
        epochs = 0  # refused below, with the range
    if model not in finetune.FINETUNABLE:
        messages.error(request, _("Choose a model to fine-tune."))
        return redirect("assist-models", slug=slug)
    job = finetune.queue_finetune(project, model, epochs=epochs, by=request.user)
    messages.success(
        request,
        _("Fine-tuning queued (job %(id)s): the new version appears here when it is done.")
        % {"id": job.pk},
    )
    return redirect("assist-models", slug=slug)


@login_required
@require_POST
def promote(request, slug: str, version_id: int):
    project = managed_project_or_404(request, slug)
    row = finetune.promote(
        project, version_id, by=request.user, reason=request.POST.get("reason", "")[:500]
    )
    messages.success(
        request,
        _("%(name)s %(version)s now runs by default.") % {"name": row.name, "version": row.version},
    )
    return redirect("assist-models", slug=slug)
