"""Job handlers (annotation_server/registry.py): thin wrappers over services."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from annotation_server.outbox import services
from annotation_server.outbox.models import Destination


def deliver_job(ctx) -> dict:
    """Deliver one outbox item (params: item)."""
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
    items = services.queue_version(version, destination, user)
    return {"items": len(items)}
