"""Job handlers of the quality app."""

from __future__ import annotations

from annotation_server.projects.models import Case
from annotation_server.quality.models import QcReport
from annotation_server.quality.services import check_case


def check_cases(ctx) -> dict:
    """Image QC for the cases of newly imported series (or a re-run for a project)."""
    cases = Case.objects.filter(pk__in=ctx.params["case_ids"]).select_related("project")
    counts: dict[str, int] = {}
    changed = []
    total = len(ctx.params["case_ids"])
    for done, case in enumerate(cases, 1):
        before = QcReport.objects.filter(case=case).order_by("-created_at").first()
        report = check_case(case)
        counts[report.status] = counts.get(report.status, 0) + 1
        if before is not None and before.status != report.status:
            changed.append({"case": case.code, "from": before.status, "to": report.status})
        ctx.progress(100 * done / max(total, 1))
    ctx.log(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no cases")
    for change in changed:
        ctx.log(f"{change['case']}: {change['from']} -> {change['to']}")
    return {"checked": sum(counts.values()), "by_status": counts, "changed": changed}
