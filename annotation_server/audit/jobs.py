"""Job handlers of the audit app."""

from __future__ import annotations

from annotation_server.audit.services import ChainReport, verify_chain, verify_then_anchor


def _describe(report: ChainReport) -> str:
    if not report.ok:
        return report.problem
    if report.latest_anchor is None:
        return "intact (no anchors stored yet)"
    return f"intact, {report.anchors} anchors agree"


def verify_audit_chain(ctx) -> dict:
    ctx.log("verifying the audit hash chain and its anchors")
    report = verify_chain(progress=lambda done, total: ctx.progress(100 * done / max(total, 1)))
    ctx.log(f"checked {report.checked} events: {_describe(report)}")
    return {
        "checked": report.checked,
        "ok": report.ok,
        "first_bad_id": report.first_bad_id,
        "problem": report.problem,
    }


def anchor_audit_chain(ctx) -> dict:
    """Verify the chain, then store a signed anchor of its head (fails on a broken chain)."""
    ctx.log("verifying the audit hash chain before anchoring it")
    report, anchor = verify_then_anchor(
        progress=lambda done, total: ctx.progress(95 * done / max(total, 1))
    )
    ctx.log(f"anchored {anchor.count} events (head #{anchor.head_id}) in {anchor.name}")
    return {
        "checked": report.checked,
        "count": anchor.count,
        "head_id": anchor.head_id,
        "head_hash": anchor.head_hash,
        "created_at": anchor.created_at,
        "stored_as": anchor.name,
    }
