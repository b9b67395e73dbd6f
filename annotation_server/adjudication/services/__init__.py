"""Settling a case's reads and arbitrating what the protocol cannot settle.

`reads_complete` (reading.phases, called when the last phase's reads are all
in) queues the "adjudication.settle" job (adjudication.jobs). `settle_case`
matches the final-phase reads (qc.matching), applies the protocol's
auto-consensus rule (qc.consensus), writes the auto-accepted reference findings
and either closes the case (adjudicated) or opens arbitration tasks. Arbitrators
save draft decisions with optimistic locking and sign with their password;
signing writes the reference standard, as new revisions, never overwrites.

settle.py holds the settling, arbitration.py the decisions and signatures,
common.py the constants and errors, reference.py every write of the reference
standard.
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
    settle_case,
)
from annotation_server.reading.phases import reads_complete

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
    "sign",
    "task_clusters",
    "validate_decisions",
]
