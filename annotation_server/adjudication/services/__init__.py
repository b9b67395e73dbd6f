"""Settling a case's reads and arbitrating what the protocol cannot settle.

`reads_complete` (called when the last phase's reads are all in) queues the
"adjudication.settle" job. `settle_case` matches the final-phase reads
(qc.matching), applies the protocol's auto-consensus rule (qc.consensus),
writes the auto-accepted reference findings and either closes the case
(adjudicated) or opens arbitration tasks. Arbitrators save draft decisions
with optimistic locking and sign with their password; signing writes the
reference standard, as new revisions, never overwrites.

settle.py holds the settling, arbitration.py the decisions and signatures,
common.py the constants, errors and the reference writers both use.
"""

from annotation_server.adjudication.services.arbitration import (
    decisions_hash,
    reopen,
    save_decisions,
    sign,
    task_clusters,
    validate_decisions,
)
from annotation_server.adjudication.services.common import (
    ACTIONS,
    REASON_CODES,
    ArbitrationError,
    SettleError,
    SignatureError,
)
from annotation_server.adjudication.services.settle import (
    arbitrator_candidates,
    final_reads,
    open_arbitration,
    reads_complete,
    settle_case,
    settle_job,
)

__all__ = [
    "ACTIONS",
    "REASON_CODES",
    "ArbitrationError",
    "SettleError",
    "SignatureError",
    "arbitrator_candidates",
    "decisions_hash",
    "final_reads",
    "open_arbitration",
    "reads_complete",
    "reopen",
    "save_decisions",
    "settle_case",
    "settle_job",
    "sign",
    "task_clusters",
    "validate_decisions",
]
