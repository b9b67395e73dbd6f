"""The project overview (/projects/<slug>/, URL name projects:project_overview):
the dataset manager's progress dashboard and the way into every other manager
page. It aggregates reading, adjudication and quality, so it lives in web, the
top layer. The REST twin is /api/v1/projects/<slug>/overview/.

Shown: cases per state, reads per reader (assigned / in progress / submitted /
overdue), throughput per day (reads submitted, cases adjudicated) with a finish
estimate, QC status counts and open case flags, disputes waiting for
arbitration, and what is stuck (reads whose reader left or are overdue,
arbitration tasks, cases whose reads are in but were never settled), each with
its action."""

from __future__ import annotations

import math
from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.shortcuts import render
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation_server.adjudication.models import ArbitrationTask
from annotation_server.adjudication.services import console as adjudication_console
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.models import Case, Project
from annotation_server.projects.permissions import managed_project_or_hide
from annotation_server.projects.services import case_state_counts
from annotation_server.quality.services import open_flags
from annotation_server.reading import assignment
from annotation_server.reading import console as reading_console
from annotation_server.reading.models import ReadingTask

STATE_ORDER = ["imported", "qc", "reading", "arbitration", "adjudicated", "frozen"]
WINDOW_DAYS = 14

# Manager pages linked from the overview: (URL name, label). A page another part
# of RefSet has not registered (yet) is left out rather than failing the page.
LINKS = [
    ("import", _("Import images")),
    ("qc", _("Image quality")),
    ("assignments", _("Assignments")),
    ("qualification-manage", _("Qualification")),
    ("projects:project_edit", _("Settings")),
    ("projects:project_schema", _("Label schema")),
    ("projects:project_qc_profile", _("QC profile")),
    ("projects:project_members", _("Members")),
]


def _links(slug: str) -> list[dict]:
    out = []
    for name, label in LINKS:
        try:
            out.append({"name": name, "label": label, "url": reverse(name, args=[slug])})
        except NoReverseMatch:
            continue
    return out


def _throughput(project: Project, today) -> list[dict]:
    since = today - timedelta(days=WINDOW_DAYS - 1)
    reads = dict(
        ReadingTask.objects.operational()
        .filter(case__project=project, submitted_at__date__gte=since)
        .annotate(day=TruncDate("submitted_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    adjudicated: dict = {}
    for event in AuditEvent.objects.filter(
        project_id=project.pk,
        action="case.state_changed",
        created_at__date__gte=since,
        data__to=Case.State.ADJUDICATED,
    ).only("created_at"):
        day = timezone.localdate(event.created_at)
        adjudicated[day] = adjudicated.get(day, 0) + 1
    days = []
    for i in range(WINDOW_DAYS):
        day = since + timedelta(days=i)
        days.append(
            {"day": day, "reads": reads.get(day, 0), "adjudicated": adjudicated.get(day, 0)}
        )
    top = max([d["reads"] for d in days] + [1])
    for d in days:
        d["pct"] = round(100 * d["reads"] / top)
    return days


def _estimate(project: Project, counts: dict, days: list[dict], today) -> dict:
    """Reads still to do, the recent rate, and the day the reads would be done."""
    protocol = project.protocol
    phases = len(protocol.phases)
    open_reads = (
        ReadingTask.objects.operational()
        .filter(case__project=project)
        .exclude(state=ReadingTask.State.SUBMITTED)
        .count()
    )
    waiting = assignment.candidate_cases(project).filter(state=Case.State.QC).count()
    to_assign = (waiting + counts.get("imported", 0)) * protocol.readers_per_case * phases
    review_to_open = 0
    if protocol.review_phase:
        review_to_open = (
            Case.objects.filter(project=project, state=Case.State.READING, is_qualification=False)
            .exclude(reading_tasks__phase=2)
            .count()
            * protocol.readers_per_case
        )
    remaining = open_reads + to_assign + review_to_open
    submitted = sum(d["reads"] for d in days)
    active = [d for d in days if d["reads"]]
    span = (today - active[0]["day"]).days + 1 if active else 0
    rate = submitted / span if span else 0.0
    finish = today + timedelta(days=math.ceil(remaining / rate)) if rate and remaining else None
    return {
        "remaining_reads": remaining,
        "open_reads": open_reads,
        "rate_per_day": round(rate, 1),
        "finish": finish,
        "done": remaining == 0,
    }


def overview_data(project: Project) -> dict:
    today = timezone.localdate()
    counts = case_state_counts([project.pk])[project.pk]
    total = counts.get("total", 0)
    states = [
        {"state": s, "label": Case.State(s).label, "n": counts.get(s, 0)} for s in STATE_ORDER
    ]
    load = assignment.overview(project)
    days = _throughput(project, today)
    qc = dict(
        Case.objects.filter(project=project, is_qualification=False)
        .values_list("qc_status")
        .annotate(n=Count("id"))
        .order_by()
    )
    case_ids = Case.objects.filter(project=project).values_list("id", flat=True)
    flags = [
        {"flag": f, "case": f.case.code, "case_id": f.case_id, "kind": f.kind}
        for fs in open_flags(case_ids).values()
        for f in fs
    ]
    for row in flags:
        row["label"] = row["flag"].get_kind_display()
        row["reason"] = row["flag"].reason
        row["raised_at"] = row["flag"].raised_at
    in_arbitration = Case.objects.filter(
        project=project, state=Case.State.ARBITRATION, is_qualification=False
    )
    open_tasks = dict(
        ArbitrationTask.objects.filter(case__in=in_arbitration)
        .exclude(state=ArbitrationTask.State.SIGNED)
        .values_list("role")
        .annotate(n=Count("id"))
        .order_by()
    )
    options = assignment.reassign_options(project)
    stuck_reads = reading_console.stuck_reads(project)
    for row in stuck_reads:
        row["candidates"] = options.get(row["task_id"], [])
    return {
        "total": total,
        "states": states,
        "done_pct": round(100 * (counts.get("adjudicated", 0) + counts.get("frozen", 0)) / total)
        if total
        else 0,
        "readers": load["readers"],
        "readers_per_case": load["readers_per_case"],
        "throughput": days,
        "estimate": _estimate(project, counts, days, today),
        "qc": {
            "pass": qc.get(Case.QcStatus.PASS, 0),
            "warn": qc.get(Case.QcStatus.WARN, 0),
            "fail": qc.get(Case.QcStatus.FAIL, 0),
            "overridden": qc.get(Case.QcStatus.OVERRIDDEN, 0),
            "pending": qc.get(Case.QcStatus.PENDING, 0),
        },
        "flags": flags,
        "disputes": {
            "cases": in_arbitration.count(),
            "open_tasks": {
                role: {"label": ArbitrationTask.Role(role).label, "n": n}
                for role, n in open_tasks.items()
            },
        },
        "stuck_reads": stuck_reads,
        "arbitrations": adjudication_console.stuck_arbitrations(project),
        "unsettled": adjudication_console.unsettled_cases(project),
        "adjudicated": list(
            Case.objects.filter(
                project=project,
                state__in=(Case.State.ADJUDICATED, Case.State.FROZEN),
                is_qualification=False,
            )
            .order_by("-state_changed_at")
            .values("id", "code", "state")[:50]
        ),
        "reading_cases": list(
            Case.objects.filter(project=project, state=Case.State.READING, is_qualification=False)
            .order_by("code")
            .values("id", "code")[:200]
        ),
    }


@never_cache
@login_required
def project_overview(request, slug: str):
    project = managed_project_or_hide(request.user, slug)
    return render(
        request,
        "web/project_overview.html",
        {"project": project, "data": overview_data(project), "links": _links(slug)},
    )


def _plain(data: dict) -> dict:
    """The overview as JSON: people as pseudonyms and ids, flags as their fields."""
    out = dict(data)
    out["flags"] = [{k: v for k, v in f.items() if k != "flag"} for f in data["flags"]]
    out["stuck_reads"] = [
        {
            **{k: v for k, v in r.items() if k not in ("task", "candidates")},
            "candidates": [{"id": u.pk, "pseudonym": u.profile.pseudonym} for u in r["candidates"]],
        }
        for r in data["stuck_reads"]
    ]
    out["arbitrations"] = [
        {
            **{k: v for k, v in r.items() if k not in ("task", "candidates")},
            "candidates": [{"id": u.pk, "pseudonym": u.profile.pseudonym} for u in r["candidates"]],
        }
        for r in data["arbitrations"]
    ]
    out["unsettled"] = [{"id": c.pk, "code": c.code} for c in data["unsettled"]]
    out["states"] = [{**s, "label": str(s["label"])} for s in data["states"]]
    return out


class OverviewView(APIView):
    """The project overview's data (managers of the project; others 404)."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        project = managed_project_or_hide(request.user, slug)
        return Response(_plain(overview_data(project)))


# Joined into the "projects" namespace by annotation_server/urls.py.
urlpatterns = [
    path("projects/<slug:slug>/", project_overview, name="project_overview"),
    path("api/v1/projects/<slug:slug>/overview/", OverviewView.as_view(), name="api_overview"),
]
