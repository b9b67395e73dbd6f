"""The web shell: home (projects with progress), the reader's worklist, health."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from annotation_server.accounts.models import Role
from annotation_server.projects.models import Case, Membership, Project
from annotation_server.projects.permissions import MANAGE, project_ids
from annotation_server.projects.services import case_state_counts, reader_task_counts
from annotation_server.reading.models import ReadingTask
from annotation_server.web import health, periodic

STATE_ORDER = ["imported", "qc", "reading", "arbitration", "adjudicated", "frozen"]


@login_required
def home(request):
    user = request.user
    projects = list(Project.objects.visible_to(user).select_related("label_schema"))
    ids = [p.pk for p in projects]
    managed = project_ids(user, MANAGE)
    case_counts = case_state_counts([pid for pid in ids if pid in managed])
    own_counts = reader_task_counts(user, ids)
    roles: dict[int, list[str]] = {}
    reads: set[int] = set()
    for m in Membership.objects.filter(user=user, project_id__in=ids):
        roles.setdefault(m.project_id, []).append(m.get_role_display())
        if m.role == Role.READER:
            reads.add(m.project_id)
    rows = []
    for project in projects:
        counts = case_counts.get(project.pk)
        mine = own_counts.get(project.pk)
        rows.append(
            {
                "project": project,
                "roles": roles.get(project.pk, []),
                "manages": project.pk in managed,
                "reads": project.pk in reads,
                "states": [(s, Case.State(s).label, counts.get(s, 0)) for s in STATE_ORDER]
                if counts
                else None,
                "total": counts["total"] if counts else None,
                "done_pct": round(
                    100 * (counts.get("adjudicated", 0) + counts.get("frozen", 0)) / counts["total"]
                )
                if counts and counts["total"]
                else 0,
                "mine": mine,
                "mine_pct": round(100 * mine["submitted"] / mine["total"]) if mine else 0,
            }
        )
    must = _must_qualify(user, ids)
    for row in rows:
        row["must_qualify"] = must.get(row["project"].pk)
    notices = periodic.notices_for(user)
    return render(request, "web/home.html", {"rows": rows, "notices": notices})


def _must_qualify(user, ids) -> dict:
    """The projects whose active qualification test this reader must still pass."""
    from annotation_server.qualification.services import must_qualify

    return {r["project"].pk: r for r in must_qualify(user, ids)}


@login_required
def worklist(request):
    tasks = (
        ReadingTask.objects.operational()
        .filter(reader=request.user)
        .select_related("case__project", "case__series")
        .in_worklist_order()
    )
    state = request.GET.get("state", "open")
    if state == "open":
        tasks = tasks.exclude(state=ReadingTask.State.SUBMITTED)
    elif state in ReadingTask.State.values:
        tasks = tasks.filter(state=state)
    project = request.GET.get("project")
    if project:
        tasks = tasks.filter(case__project__slug=project)
    from annotation_server.quality.services import latest_reports, open_flags, warnings_of

    tasks = list(tasks)
    reports = latest_reports([t.case_id for t in tasks])
    for task in tasks:  # image-QC warnings travel with the case to its readers
        task.qc_warnings = warnings_of(reports.get(task.case_id))
    flags = open_flags({t.case_id for t in tasks})
    now = timezone.now()
    for task in tasks:  # a case withdrawn, or failing QC while in reading, says so
        task.case_flags = flags.get(task.case_id, [])
        task.overdue = task.is_overdue(now)
    projects = list(Project.objects.visible_to(request.user))
    counts = reader_task_counts(request.user, [p.pk for p in projects])
    progress = [
        {
            "project": p,
            "total": counts[p.pk]["total"],
            "submitted": counts[p.pk]["submitted"],
            "pct": round(100 * counts[p.pk]["submitted"] / counts[p.pk]["total"]),
        }
        for p in projects
        if counts.get(p.pk, {}).get("total")
    ]
    return render(
        request,
        "web/worklist.html",
        {
            "tasks": tasks,
            "state": state,
            "project": project,
            "states": ReadingTask.State.choices,
            "projects": projects,
            "progress": progress,
            "must_qualify": list(_must_qualify(request.user, [p.pk for p in projects]).values()),
        },
    )


@require_GET
@never_cache
def healthz(request):
    result = health.report()
    return JsonResponse(result, status=200 if result["ok"] else 503)
