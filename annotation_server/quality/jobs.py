"""Job handlers of the quality app."""

from __future__ import annotations

from annotation_server.projects.models import Case
from annotation_server.quality.models import CaseFlag, QcReport
from annotation_server.quality.services import check_case, rule_changes


def check_cases(ctx) -> dict:
    """Image QC for the cases of newly imported series (or a re-run for a project).

    The result says what changed: per case its status before and after
    (`changed`) and per rule (`rule_changes`: case, rule, before -> after), and
    which cases already in reading now fail and were flagged (`flagged`)."""
    cases = Case.objects.filter(pk__in=ctx.params["case_ids"]).select_related("project")
    counts: dict[str, int] = {}
    changed = []
    per_rule = []
    flagged = []
    total = len(ctx.params["case_ids"])
    for done, case in enumerate(cases, 1):
        before = QcReport.objects.filter(case=case).order_by("-created_at").first()
        was_flagged = CaseFlag.objects.filter(
            case=case, kind=CaseFlag.Kind.QC_FAILED_IN_READING, resolved_at__isnull=True
        ).exists()
        report = check_case(case)
        counts[report.status] = counts.get(report.status, 0) + 1
        if before is not None and before.status != report.status:
            changed.append(
                {"case": case.code, "case_id": case.pk, "from": before.status, "to": report.status}
            )
        if before is not None:
            for change in rule_changes(before, report):
                per_rule.append({"case": case.code, "case_id": case.pk, **change})
        now_flagged = CaseFlag.objects.filter(
            case=case, kind=CaseFlag.Kind.QC_FAILED_IN_READING, resolved_at__isnull=True
        ).exists()
        if now_flagged and not was_flagged:
            flagged.append({"case": case.code, "case_id": case.pk, "state": case.state})
        ctx.progress(100 * done / max(total, 1))
    ctx.log(", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no cases")
    for change in changed:
        ctx.log(f"{change['case']}: {change['from']} -> {change['to']}")
    for change in per_rule:
        ctx.log(f"{change['case']} {change['rule']}: {change['before']} -> {change['after']}")
    for flag in flagged:
        ctx.log(f"{flag['case']}: in {flag['state']} and now failing QC: flagged")
    return {
        "checked": sum(counts.values()),
        "by_status": counts,
        "changed": changed,
        "rule_changes": per_rule,
        "flagged": flagged,
    }
