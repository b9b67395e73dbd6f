"""What the manager's reference-standard page and its REST twin show of one
case: the current reference findings with every revision, the reads that
support each, the match rule and threshold used, the arbitration decisions and
signatures, and the case-level answers. Built from the blinded querysets
(a manager holding a blind arbitration task of the case sees none of it)."""

from __future__ import annotations

from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.adjudication.services.common import REASON_CODES
from annotation_server.projects.models import Case


def _person(user) -> str:
    if user is None:
        return ""
    profile = getattr(user, "profile", None)
    return profile.pseudonym if profile else f"user-{user.pk}"


def _revision(ref: ReferenceFinding) -> dict:
    task = ref.arbitration_task
    return {
        "id": ref.pk,
        "revision": ref.revision,
        "is_current": ref.is_current,
        "status": ref.status,
        "status_label": ref.get_status_display(),
        "decision": ref.decision,
        "decision_label": ref.get_decision_display(),
        "finding_type": ref.finding_type,
        "attributes": ref.attributes,
        "diameter_mm": ref.diameter_mm,
        "centre_mm": [ref.centre_x_mm, ref.centre_y_mm, ref.centre_z_mm],
        "decided_at": ref.decided_at,
        "decided_by": _person(ref.decided_by),
        "reason_code": ref.reason_code,
        "reason_label": str(REASON_CODES.get(ref.reason_code, "")) if ref.reason_code else "",
        "reason_text": ref.reason_text,
        "match_rule": ref.match_rule,
        "match_threshold": ref.match_threshold,
        "arbitration": {
            "task": task.pk,
            "role": task.role,
            "role_label": task.get_role_display(),
            "round": task.round,
            "signed_at": task.signed_at,
            "signature_sha256": task.signature_hash,
        }
        if task is not None
        else None,
    }


def reference_standard(case: Case, user) -> dict:
    """The case's reference standard for its managers (see the module doc)."""
    refs = list(
        ReferenceFinding.objects.visible_to(user)
        .filter(case=case)
        .select_related("arbitration_task", "decided_by__profile")
        .prefetch_related("supporting_findings__task__reader__profile")
        .order_by("ref_key", "revision")
    )
    clusters = {
        c.ref_key: c
        for c in Cluster.objects.visible_to(user).filter(case=case).order_by("settlement__round")
    }
    findings: dict = {}
    for ref in refs:
        entry = findings.setdefault(
            ref.ref_key,
            {"ref_key": str(ref.ref_key), "revisions": [], "current": None, "cluster": None},
        )
        row = _revision(ref)
        row["supporting"] = [
            {
                "finding": str(f.uid),
                "reader": _person(f.task.reader),
                "phase": f.task.phase,
                "finding_type": f.finding_type,
                "attributes": f.attributes,
                "source": f.source,
            }
            for f in ref.supporting_findings.all()
        ]
        entry["revisions"].append(row)
        if ref.is_current:
            entry["current"] = row
        cluster = clusters.get(ref.ref_key)
        if cluster is not None:
            entry["cluster"] = {
                "id": cluster.pk,
                "number": cluster.number,
                "verdict": cluster.verdict,
                "verdict_label": cluster.get_verdict_display(),
                "readers": cluster.readers,
                "match_rule": cluster.match_rule,
                "match_threshold": cluster.match_threshold,
                "threshold_used": cluster.threshold_used,
                "reasons": [r.get("code") for r in cluster.reasons],
            }
    current = [f for f in findings.values() if f["current"] is not None]
    current.sort(key=lambda f: (f["cluster"] or {}).get("number") or 10_000)
    tasks = (
        ArbitrationTask.objects.visible_to(user)
        .filter(case=case)
        .select_related("arbitrator__profile")
        .order_by("round", "role")
    )
    settlement = Settlement.objects.visible_to(user).filter(case=case).order_by("round").first()
    labels = (
        ReferenceLabels.objects.visible_to(user)
        .filter(case=case)
        .select_related("arbitration_task")
        .order_by("revision")
    )
    return {
        "case": case.pk,
        "code": case.code,
        "state": case.state,
        "state_label": case.get_state_display(),
        "reopenable": case.state in (Case.State.ADJUDICATED, Case.State.FROZEN),
        "settlement": {
            "round": settlement.round,
            "phase": settlement.phase,
            "outcome": settlement.outcome,
            "outcome_label": settlement.get_outcome_display(),
            "created_at": settlement.created_at,
            "match_rule": settlement.protocol.get("match_rule"),
            "match_threshold": settlement.protocol.get("match_threshold"),
            "consensus_method": settlement.protocol.get("consensus_method"),
            "forced": settlement.protocol.get("forced", ""),
        }
        if settlement
        else None,
        "findings": current,
        "arbitrations": [
            {
                "task": t.pk,
                "role": t.role,
                "role_label": t.get_role_display(),
                "round": t.round,
                "arbitrator": _person(t.arbitrator),
                "state": t.state,
                "state_label": t.get_state_display(),
                "signed_at": t.signed_at,
                "signature_sha256": t.signature_hash,
                "decisions": t.decisions if t.state == ArbitrationTask.State.SIGNED else None,
            }
            for t in tasks
        ],
        "labels": [
            {
                "revision": lab.revision,
                "is_current": lab.is_current,
                "values": lab.values,
                "provenance": lab.provenance,
                "decision": lab.decision,
                "decided_at": lab.decided_at,
            }
            for lab in labels
        ],
    }


def clusters_for_ref_keys(case: Case, ref_keys) -> list[int]:
    """The clusters (of the case's settlement) that became these reference findings."""
    keys = {str(k) for k in ref_keys}
    return [
        c.pk for c in Cluster.objects.filter(case=case).order_by("number") if str(c.ref_key) in keys
    ]
