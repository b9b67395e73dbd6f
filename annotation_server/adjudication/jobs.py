"""Job handlers of the adjudication app (named in annotation_server/registry.py)."""

from __future__ import annotations

from django.db.models import Count

from annotation_server.adjudication.services.settle import settle_case


def settle_job(ctx) -> dict:
    """Job "adjudication.settle": match and settle one case's final-phase reads."""
    settlement = settle_case(ctx.params["case_id"])
    counts = dict(
        settlement.clusters.values_list("verdict").annotate(n=Count("id")).order_by("verdict")
    )
    ctx.log(f"case {settlement.case_id}: {counts}, outcome {settlement.outcome}")
    return {
        "case_id": settlement.case_id,
        "settlement_id": settlement.pk,
        "outcome": settlement.outcome,
        "clusters": counts,
        "label_disputes": len(settlement.label_disputes),
    }
