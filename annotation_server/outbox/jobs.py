"""Job handlers (annotation_server/registry.py): thin wrappers over services."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from annotation_server.outbox import services
from annotation_server.outbox.models import Destination


def deliver_job(ctx) -> dict:
    """Deliver one outbox item (params: item)."""
    ctx.log(f"delivering outbox item {ctx.params['item']}")
    return services.deliver(int(ctx.params["item"]), ctx.job_id, log=ctx.log)


def queue_version_job(ctx) -> dict:
    """Queue a frozen version for a research archive (params: version,
    destination); the objects are built here, not in the request."""
    from annotation_server.datasets.models import DatasetVersion

    version = DatasetVersion.objects.get(pk=ctx.params["version"])
    destination = Destination.objects.select_related("project", "connection").get(
        pk=ctx.params["destination"]
    )
    user = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    ctx.progress(10)
    items = services.queue_version(version, destination, user)
    ctx.progress(100)
    return {"items": len(items)}


def queue_case_job(ctx) -> dict:
    """Build and queue a case's objects for a destination (params: case,
    destination): the reference, and the reads or model proposals the protocol
    writes back. Queueing the same revision again adds nothing, so a job run
    again after a dead worker queues each object once."""
    from annotation_server.projects.models import Case

    case = Case.objects.select_related("project").get(pk=ctx.params["case"])
    destination = Destination.objects.select_related("project", "connection").get(
        pk=ctx.params["destination"]
    )
    user = get_user_model().objects.filter(pk=ctx.created_by_id).first()
    ctx.progress(10)
    items = services.queue_case_reference(case, destination, user)
    ctx.progress(100)
    carries: dict[str, int] = {}
    for item in items:
        carries[item.carries] = carries.get(item.carries, 0) + 1
    return {"case": case.code, "items": len(items), "carries": carries}
