"""Pages for scoring AI products against a frozen version (evaluation_jobs.py):
the version's evaluations with the upload form, one evaluation's progress and
report, and its downloads (result.json, figures.csv, report.html, manifest.json).

Like the export pages, every one answers 404 to anyone who does not manage the
version's project; evaluations against the sequestered split (or the whole
version) exist only for managers holding datasets.view_sequestered.

A malformed submission is answered on the upload page itself: every problem
with its line number, in the page's language; nothing is stored.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from annotation_server.datasets import evaluation_jobs, evaluation_report
from annotation_server.datasets.models import DatasetVersion, Evaluation

DOWNLOADS = {
    "json": ("result.json", "application/json"),
    "csv": ("figures.csv", "text/csv; charset=utf-8"),
    "html": ("report.html", "text/html; charset=utf-8"),
    "manifest": ("manifest.json", "application/json"),
}


def _version(request, slug: str, version: str) -> DatasetVersion:
    return get_object_or_404(
        DatasetVersion.objects.visible_to(request.user).select_related("project"),
        project__slug=slug,
        version=version,
    )


def _form_defaults(post=None) -> dict:
    post = post or {}
    return {
        "product": post.get("product", ""),
        "kind": post.get("kind", ""),
        "split": post.get("split", evaluation_jobs.SEQUESTERED_SPLIT if post else None),
        "threshold": post.get("threshold", "0.5"),
    }


@login_required
@require_http_methods(["GET", "POST"])
def evaluation_list(request, slug: str, version: str):
    dv = _version(request, slug, version)
    form = _form_defaults()
    problems, rejected = [], ""
    if request.method == "POST":
        if not dv.frozen:
            raise evaluation_jobs.EvaluationRefused(
                _("Only a frozen version can be evaluated against; freeze it first.")
            )
        form = _form_defaults(request.POST)
        upload = request.FILES.get("submission")
        try:
            evaluation = evaluation_jobs.request_evaluation(
                dv,
                user=request.user,
                data=upload.read() if upload else b"",
                filename=upload.name if upload else "",
                product=form["product"],
                kind=form["kind"],
                split=form["split"] or "",
                operating_threshold=form["threshold"],
            )
        except evaluation_jobs.SubmissionRejected as err:
            # The form comes back with every problem (the one place a view
            # answers a domain error itself: the manager corrects the file).
            problems = evaluation_report.translated_problems(err.problems)
            rejected = str(err.message)
        else:
            messages.success(request, _("Evaluation %(id)s started.") % {"id": evaluation.pk})
            return redirect(
                "datasets:evaluation", slug=slug, version=version, evaluation_id=evaluation.pk
            )
    splits = evaluation_jobs.splits_for(request.user)
    evaluations = list(evaluation_jobs.evaluations_for(dv, request.user)[:100])
    for e in evaluations:
        e.kind_label = evaluation_jobs.kind_label(e.kind)
    if form["split"] is None:
        form["split"] = splits[0][0] if splits else ""
    return render(
        request,
        "datasets/evaluations.html",
        {
            "project": dv.project,
            "version": dv,
            "evaluations": evaluations,
            "splits": splits,
            "kinds": evaluation_jobs.kind_choices(),
            "form": form,
            "problems": problems,
            "rejected": rejected,
        },
        status=400 if problems else 200,
    )


@login_required
@require_GET
def evaluation_detail(request, slug: str, version: str, evaluation_id: int):
    dv = _version(request, slug, version)
    evaluation = evaluation_jobs.evaluation_or_404(dv, request.user, evaluation_id)
    report = {}
    if evaluation.status == Evaluation.Status.SUCCEEDED:
        report = evaluation_report.context(evaluation.result, evaluation_report.meta_of(evaluation))
    return render(
        request,
        "datasets/evaluation.html",
        {
            "project": dv.project,
            "version": dv,
            "evaluation": evaluation,
            "evaluation_kind": evaluation_jobs.kind_label(evaluation.kind),
            "job": evaluation.job,
            "problems": evaluation_report.translated_problems(evaluation.problems or []),
            **report,  # the report's body (datasets/_evaluation_report.html)
        },
    )


@login_required
@require_GET
def evaluation_download(request, slug: str, version: str, evaluation_id: int, fmt: str):
    dv = _version(request, slug, version)
    evaluation = evaluation_jobs.evaluation_or_404(dv, request.user, evaluation_id)
    if fmt not in DOWNLOADS or evaluation.status != Evaluation.Status.SUCCEEDED:
        raise Http404
    name, content_type = DOWNLOADS[fmt]
    meta = evaluation_report.meta_of(evaluation)
    if fmt == "json":
        body = json.dumps(evaluation.result, ensure_ascii=False, indent=1).encode("utf-8")
    elif fmt == "csv":
        body = evaluation_report.csv_text(evaluation.result).encode("utf-8")
    elif fmt == "manifest":
        body = evaluation_report.manifest_text(evaluation.result, meta).encode("utf-8")
    elif evaluation.report_key:
        body = evaluation_jobs.load(evaluation.report_key)
    else:
        body = evaluation_report.report_html(evaluation.result, meta).encode("utf-8")
    response = HttpResponse(body, content_type=content_type)
    stem = f"{dv.project.slug}_v{dv.version}_evaluation{evaluation.pk}"
    response["Content-Disposition"] = f'attachment; filename="{stem}_{name}"'
    return response
