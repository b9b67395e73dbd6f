"""Pages of dataset versions: a project's versions (and the form that drafts a
new one), and a version's page: its splits, cases, changelog, and for a draft
the redraw, retire, discard and freeze (with confirmation) forms.

Managers of the project only (others: 404 for outsiders, 403 for members who do
not manage it). The sequestered test split's cases are shown only to managers
holding datasets.view_sequestered. Domain errors (bad version name, nothing
selected...) are answered by the DomainErrorMiddleware with their message."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from annotation_server.datasets import services
from annotation_server.datasets.export_views import export_jobs_for
from annotation_server.datasets.models import DatasetVersion
from annotation_server.datasets.querysets import may_see_sequestered
from annotation_server.projects.permissions import managed_project_or_404


def _version(request, slug: str, version: str):
    project = managed_project_or_404(request, slug)
    found = get_object_or_404(
        DatasetVersion.objects.visible_to(request.user).select_related("parent", "frozen_by"),
        project=project,
        version=version,
    )
    return project, found


def _ratios(post) -> dict[str, float]:
    out = {}
    for split in ("train", "validation", "test"):
        raw = (post.get(f"ratio_{split}") or "0").strip()
        try:
            out[split] = float(raw) / 100
        except ValueError:
            out[split] = -1.0  # refused by the service with its message
    return out


def _seed(post) -> int:
    try:
        return max(0, int(post.get("seed") or 1))
    except ValueError:
        return 1


@login_required
def version_list(request, slug: str):
    project = managed_project_or_404(request, slug)
    if request.method == "POST":
        post = request.POST
        parent = None
        if post.get("parent"):
            parent = get_object_or_404(
                DatasetVersion, project=project, frozen=True, version=post["parent"]
            )
        mode = post.get("selection", "all")
        codes = None
        if mode == "list":
            codes = [c for c in post.get("codes", "").replace(",", "\n").splitlines() if c.strip()]
        draft = services.create_draft(
            project,
            version=post.get("version", "").strip(),
            by=request.user,
            parent=parent,
            title=post.get("title", "").strip(),
            notes=post.get("notes", "").strip(),
            all_adjudicated=mode == "all",
            codes=codes,
            sites=post.getlist("site") if mode == "filter" else None,
            manufacturers=post.getlist("manufacturer") if mode == "filter" else None,
            seed=_seed(post),
            ratios=_ratios(post),
            retire_reason=post.get("retire_reason", ""),
        )
        messages.success(
            request,
            _("Draft %(version)s created with %(n)s cases; review its splits, then freeze it.")
            % {"version": draft.version, "n": draft.cases.filter(retired=False).count()},
        )
        return redirect("datasets:version", slug=slug, version=draft.version)
    versions = list(
        DatasetVersion.objects.visible_to(request.user)
        .filter(project=project)
        .select_related("parent", "frozen_by")
        .order_by("-created_at")
    )
    see_test = may_see_sequestered(request.user)
    rows = [
        {
            "version": v,
            "cases": v.cases.filter(retired=False).count(),
            "retired": v.cases.filter(retired=True).count(),
            "splits": services.split_summary(v, show_sequestered=see_test),
        }
        for v in versions
    ]
    eligible = services.eligible_cases(project).select_related("site", "series")
    return render(
        request,
        "datasets/versions.html",
        {
            "project": project,
            "rows": rows,
            "frozen_versions": [v for v in versions if v.frozen],
            "eligible_count": eligible.count(),
            "sites": sorted({c.site.code for c in eligible if c.site}),
            "manufacturers": sorted(
                {c.series.manufacturer for c in eligible if c.series.manufacturer}
            ),
            "suggested": _next_version(versions),
        },
    )


def _next_version(versions) -> str:
    if not versions:
        return "1.0.0"
    major, minor, _patch = max(v.version_key for v in versions)
    return f"{major}.{minor + 1}.0"


@login_required
def version_detail(request, slug: str, version: str):
    project, dv = _version(request, slug, version)
    see_test = may_see_sequestered(request.user)
    cases = dv.cases.visible_to(request.user).order_by("retired", "split", "case_code")
    split = request.GET.get("split", "")
    if split:
        cases = cases.filter(split=split)
    log = services.compute_changelog(dv)
    if not see_test:
        log = services.without_sequestered(dv, log)
    return render(
        request,
        "datasets/version.html",
        {
            "project": project,
            "version": dv,
            "cases": list(cases),
            "split": split,
            "splits": services.split_summary(dv, show_sequestered=see_test),
            "see_sequestered": see_test,
            "changelog": log,
            "leaks": services.patient_leaks(dv),
            "export_jobs": export_jobs_for(dv, request.user) if dv.frozen else [],
            "split_choices": DatasetVersion.Split.choices,
            "ratios_pct": {k: round(v * 100) for k, v in (dv.split_ratios or {}).items()},
        },
    )


@login_required
@require_POST
def version_freeze(request, slug: str, version: str):
    _project, dv = _version(request, slug, version)
    if not request.POST.get("understood"):
        messages.error(request, _("Tick the box to confirm that the version becomes read-only."))
        return redirect("datasets:version", slug=slug, version=version)
    services.freeze(dv, by=request.user, confirm=request.POST.get("confirm", ""))
    messages.success(
        request, _("Version %(version)s is frozen: read-only from now on.") % {"version": version}
    )
    return redirect("datasets:version", slug=slug, version=version)


@login_required
@require_POST
def version_redraw(request, slug: str, version: str):
    _project, dv = _version(request, slug, version)
    services.redraw(dv, by=request.user, seed=_seed(request.POST), ratios=_ratios(request.POST))
    messages.success(request, _("Splits drawn again."))
    return redirect("datasets:version", slug=slug, version=version)


@login_required
@require_POST
def version_retire(request, slug: str, version: str):
    _project, dv = _version(request, slug, version)
    code = request.POST.get("case", "")
    services.retire_case(dv, code, by=request.user, reason=request.POST.get("reason", ""))
    messages.success(request, _("Case %(code)s retired.") % {"code": code})
    return redirect("datasets:version", slug=slug, version=version)


@login_required
@require_POST
def version_discard(request, slug: str, version: str):
    _project, dv = _version(request, slug, version)
    services.discard_draft(dv, by=request.user)
    messages.success(request, _("Draft %(version)s discarded.") % {"version": version})
    return redirect("datasets:versions", slug=slug)
