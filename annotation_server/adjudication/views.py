"""Browser pages of arbitration: the arbitrator's queue and the arbitration view.

The view page is one template plus ES modules (frontend_templates/static/refset/
arbitration/) that reuse the reading workstation's viewer modules. Everything the
page starts with comes from the same blinded querysets and serializers as the REST
API (a blind arbitrator's task detail holds only their own decisions); decisions
are then saved and signed through the API (/api/v1/arbitration-tasks/...).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache

from annotation_server.adjudication.api.serializers import (
    ArbitrationTaskDetailSerializer,
    ClusterSerializer,
    ReferenceFindingSerializer,
    ReferenceLabelsSerializer,
)
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
)
from annotation_server.adjudication.services.settle import consensus_method, merged_geometries
from annotation_server.imaging.api.serializers import SeriesDetailSerializer
from annotation_server.imaging.delivery import series_with_slices
from annotation_server.projects.permissions import ARBITRATE, project_ids
from annotation_server.reading.anonymise import ReaderLabeller
from annotation_server.reading.models import ReadingTask
from annotation_server.reading.pages import schema_language, serializer_context


def _own_tasks(user):
    """The user's own arbitration tasks in projects where they still arbitrate."""
    return (
        ArbitrationTask.objects.visible_to(user)
        .filter(arbitrator=user, case__project_id__in=project_ids(user, ARBITRATE))
        .select_related("case__project")
    )


def _open_first(task: ArbitrationTask) -> tuple:
    signed = task.state == ArbitrationTask.State.SIGNED
    due = task.due_at.timestamp() if task.due_at else float("inf")
    return (signed, due if not signed else -task.signed_at.timestamp(), task.pk)


@never_cache
@login_required
def queue(request):
    """The arbitrator's tasks: open ones first (earliest due), then the signed ones."""
    tasks = sorted(_own_tasks(request.user), key=_open_first)
    now = timezone.now()
    rows = []
    for task in tasks:
        items = task.items or {}
        decided = task.decisions or {}
        clusters = len(items.get("clusters", []))
        labels = len(items.get("labels", []))
        rows.append(
            {
                "task": task,
                "clusters": clusters,
                "labels": labels,
                "decided": len(decided.get("clusters", {})) + len(decided.get("labels", {})),
                "total": clusters + labels,
                "signed": task.state == ArbitrationTask.State.SIGNED,
                "overdue": task.is_overdue(now),
            }
        )
    open_rows = [r for r in rows if not r["signed"]]
    return render(
        request,
        "adjudication/queue.html",
        {
            "rows": rows,
            "open_count": len(open_rows),
            "open_clusters": sum(r["clusters"] for r in open_rows),
        },
    )


def _readers(case, user) -> list[dict]:
    """Every read of the case's last phase as R1..RN (also reads that marked nothing)."""
    labeller = ReaderLabeller(user)
    phase = max(case.project.protocol.phases)
    tasks = (
        ReadingTask.objects.operational()
        .filter(case=case, phase=phase)
        .select_related("case__project", "reader__profile")
    )
    labels = sorted({labeller.label(t) for t in tasks}, key=lambda s: (len(s), s))
    return [{"label": label} for label in labels]


@never_cache
@login_required
def arbitrate(request, task_id: int):
    """The arbitration view of one of the arbitrator's own tasks."""
    task = (
        _own_tasks(request.user)
        .select_related("case__project__label_schema", "case__project__protocol", "case__series")
        .filter(pk=task_id)
        .first()
    )
    if task is None:
        raise Http404("No such arbitration task of yours.")
    case = task.case
    context = serializer_context(request)
    detail = ArbitrationTaskDetailSerializer(task, context=context).data
    series = series_with_slices(case.series_id)
    # All reads overlaid: every cluster of the case, the settled ones too.
    task_cluster_ids = set(task.items.get("clusters", []))
    others = (
        Cluster.objects.visible_to(request.user)
        .filter(case=case)
        .exclude(pk__in=task_cluster_ids)
        .prefetch_related("findings__task__case__project", "findings__task__reader__profile")
        .order_by("number")
    )
    signed = task.state == ArbitrationTask.State.SIGNED
    references = []
    labels = None
    if signed:
        # The clusters' reference findings and those the arbitrator added.
        keys = [c["ref_key"] for c in detail["clusters"]]
        keys += [a["key"] for a in (task.decisions or {}).get("added") or []]
        refs = (
            ReferenceFinding.objects.visible_to(request.user)
            .filter(case=case, ref_key__in=keys, is_current=True)
            .filter(arbitration_task__round=task.round)
            .prefetch_related("supporting_findings__task__case__project")
            .order_by("ref_key")
        )
        references = ReferenceFindingSerializer(refs, many=True, context=context).data
        current_labels = (
            ReferenceLabels.objects.visible_to(request.user)
            .filter(case=case, is_current=True, arbitration_task__round=task.round)
            .first()
        )
        labels = ReferenceLabelsSerializer(current_labels).data if current_labels else None
    method = consensus_method(case.project.protocol)
    for cluster in detail["clusters"]:
        cluster["merged_geometries"] = merged_geometries(cluster["id"])
    bootstrap = {
        "consensus_method": method,
        "task": detail,
        "case": {"id": case.pk, "code": case.code, "state": case.state},
        "project": {"slug": case.project.slug, "name": case.project.name},
        "series": SeriesDetailSerializer(series, context=context).data,
        "schema": case.project.label_schema.definition,
        "readers": _readers(case, request.user),
        "settled_clusters": ClusterSerializer(others, many=True, context=context).data,
        "writable": not signed and case.state == case.State.ARBITRATION,
        "references": references,
        "reference_labels": labels,
        "lang": schema_language(),
        # Times on the page are shown in the server's zone, as the templates show them.
        "time_zone": timezone.get_current_timezone_name(),
        "urls": {"api": "/api/v1/", "queue": reverse("arbitration-queue")},
    }
    return render(
        request,
        "adjudication/arbitrate.html",
        {"task": task, "case": case, "project": case.project, "bootstrap": bootstrap},
    )
