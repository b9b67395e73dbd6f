"""python manage.py anchor_audit

Verifies the audit hash chain (and the anchors already stored), then writes a
signed anchor of its head -- {count, head_id, head_hash, created_at}, HMAC-SHA256
with REFSET_AUDIT_ANCHOR_KEY -- to storage under audit/anchors/ and to the log
("refset.audit.anchor"). Run it periodically (cron, or the job "audit.anchor"):
rows after the latest anchor are protected by the chain only.
Exit status: 0 when written; 1 when the chain is broken (nothing is written).
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand

from annotation_server.audit.services import AuditChainBroken, verify_then_anchor


class Command(BaseCommand):
    help = "Verify the audit chain, then store a signed anchor of its head (count and hash)."

    def handle(self, *args, **options):
        try:
            report, anchor = verify_then_anchor()
        except AuditChainBroken as exc:
            self.stderr.write(f"Audit chain BROKEN, no anchor written: {exc}")
            sys.exit(1)
        self.stdout.write(
            f"Anchor written to {anchor.name}: {anchor.count} events up to row "
            f"#{anchor.head_id}, head hash {anchor.head_hash[:16]}..., {anchor.created_at}."
        )
