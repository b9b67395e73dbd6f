"""Job handlers of the audit app."""

from __future__ import annotations

from annotation_server.audit.services import verify_chain


def verify_audit_chain(ctx) -> dict:
    ctx.log("verifying the audit hash chain")
    report = verify_chain(progress=lambda done, total: ctx.progress(100 * done / max(total, 1)))
    ctx.log(f"checked {report.checked} events: {'intact' if report.ok else report.problem}")
    return {
        "checked": report.checked,
        "ok": report.ok,
        "first_bad_id": report.first_bad_id,
        "problem": report.problem,
    }
