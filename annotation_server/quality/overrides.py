"""Who overrode a case's QC failure, when and why: read back from the audit
trail ("case.qc_overridden", written by services.override_qc), so the QC page
shows exactly what was recorded and nothing can disagree with it."""

from __future__ import annotations

from collections.abc import Iterable

from annotation_server.audit.models import AuditEvent


def _name(user) -> str:
    if user is None:
        return "—"
    return (user.get_full_name() or "").strip() or user.get_username()


def overrides_by_case(case_ids: Iterable[int]) -> dict[int, dict]:
    """The latest QC override of each case: {case_id: {"by", "username", "at", "reason"}}."""
    ids = [str(pk) for pk in case_ids]
    if not ids:
        return {}
    latest: dict[int, dict] = {}
    events = (
        AuditEvent.objects.filter(
            action="case.qc_overridden", object_type="projects.case", object_id__in=ids
        )
        .select_related("actor")
        .order_by("created_at", "pk")
    )
    for event in events:
        latest[int(event.object_id)] = {
            "by": _name(event.actor),
            "username": event.actor.get_username() if event.actor else "",
            "at": event.created_at,
            "reason": (event.data or {}).get("reason", ""),
        }
    return latest


def attach_overrides(rows: list[dict]) -> int:
    """Give each QC page row (with its "case") its latest override, or None;
    returns how many rows have one."""
    found = overrides_by_case(row["case"].pk for row in rows)
    for row in rows:
        row["override"] = found.get(row["case"].pk)
    return sum(1 for row in rows if row["override"])
