"""python manage.py verify_audit

Recomputes the audit hash chain and checks it against every signed anchor in
storage (audit/anchors/). Exit status: 0 when the chain is intact and agrees with
every anchor; 1 naming the first bad row (or anchor file) and the problem: link
broken, content does not match its hash, fewer rows than an anchor says
(truncation), head hash differs from an anchor (rewritten and re-hashed), anchor
signature invalid. Rows written after the latest anchor are only protected by the
chain itself: run anchor_audit periodically.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from annotation_server.audit.services import ANCHOR_DIR, verify_chain


class Command(BaseCommand):
    help = "Verify the audit log's hash chain and its signed anchors (exit 1 when broken)."

    def handle(self, *args, **options):
        report = verify_chain()
        if not report.ok:
            where = f"row #{report.first_bad_id}" if report.first_bad_id is not None else "anchors"
            self.stderr.write(f"Audit chain BROKEN at {where}: {report.problem}")
            self.stderr.write(f"{report.checked} events verified before the problem.")
            sys.exit(1)
        latest = report.latest_anchor
        anchors = f"{report.anchors} anchor{'' if report.anchors == 1 else 's'}"
        self.stdout.write(f"Audit chain intact: {report.checked} events, {anchors} checked.")
        if latest is None:
            self.stdout.write(
                f"Warning: no anchors in storage under {ANCHOR_DIR}/: truncation, and a rewrite "
                "with every later hash recomputed, cannot be detected. Run "
                "`manage.py anchor_audit` periodically."
            )
            return
        self.stdout.write(
            f"Latest anchor: {latest.created_at}, {latest.count} events up to row "
            f"#{latest.head_id} ({latest.name})."
        )
        if report.unanchored:
            self.stdout.write(
                f"{report.unanchored} events after the latest anchor are covered by the chain "
                "only (not yet anchored)."
            )
