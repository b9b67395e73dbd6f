"""Settling: matching the final-phase reads, auto-consensus, opening arbitration."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from annotation_server.accounts.models import Role
from annotation_server.adjudication.marks import grid_for_series, mark_for_finding
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    Settlement,
)
from annotation_server.adjudication.services.common import (
    AUTO_CONSENSUS_METHOD,
    ArbitrationError,
    SettleError,
)
from annotation_server.adjudication.services.reference import write_labels, write_reference
from annotation_server.audit import services as audit
from annotation_server.projects.models import Case, Membership, ReadingProtocol
from annotation_server.projects.schema import outside_scale
from annotation_server.projects.services import transition
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from qc import consensus as qc_consensus
from qc import grading as qc_grading
from qc import matching as qc_matching


def consensus_rule(protocol: ReadingProtocol) -> qc_consensus.ConsensusRule:
    definition = protocol.project.label_schema.definition
    kinds = {
        t["key"]: {a["key"]: a["kind"] for a in t.get("attributes", [])}
        for t in definition.get("finding_types", [])
    }
    return qc_consensus.ConsensusRule(
        readers=protocol.readers_per_case,
        accept_min_readers=protocol.auto_accept_min_readers,
        drop_below_readers=protocol.drop_below_readers,
        same_type=protocol.auto_accept_same_type,
        ordinal_tolerance=protocol.auto_accept_ordinal_tolerance,
        size_tolerance_mm=protocol.size_tolerance_mm,
        attribute_kinds=kinds,
        case_field_kinds={f["key"]: f["kind"] for f in definition.get("case_fields", [])},
    )


def settle_labels(
    labels: dict[str, dict], protocol: ReadingProtocol
) -> tuple[list[dict], dict[str, object]]:
    """The case-level label disputes and the agreed answers of the final reads.

    Ordinal fields (grades) follow the protocol's grade rule (qc.grading: differ
    by at least N, or only across the referable threshold; an answer outside the
    scale, such as "ungradable", against a grade always disputes); every other
    field (text excepted) must be answered the same by every read, and a category
    with answers outside its scale (macular oedema "ungradable") names why it
    disputes as a grade does (qc.grading.category_dispute)."""
    fields = {f["key"]: f for f in protocol.project.label_schema.definition.get("case_fields", [])}
    ordinal = {k for k, f in fields.items() if f["kind"] == "ordinal"}
    others = {k: f["kind"] for k, f in fields.items() if k not in ordinal}
    disputes = qc_consensus.label_disagreements(labels, others)
    for dispute in disputes:
        outside = outside_scale(fields[dispute["key"]])
        if outside:
            reason = qc_grading.category_dispute(dispute["values"], outside)
            if reason:
                dispute["rule"] = reason
    rule = qc_grading.GradeRule(protocol.grade_rule, protocol.grade_difference)
    for key in sorted(ordinal):
        values = {read: answers.get(key) for read, answers in labels.items()}
        reason = qc_grading.grade_dispute(values, rule, fields[key].get("referable_from"))
        if reason:
            disputes.append({"code": "case_label", "key": key, "values": values, "rule": reason})
    disputes.sort(key=lambda d: d["key"])
    disputed = {d["key"] for d in disputes}
    agreed = {}
    for key, kind in {**others, **dict.fromkeys(ordinal, "ordinal")}.items():
        if key in disputed or not any(key in v for v in labels.values()):
            continue
        values = {read: answers.get(key) for read, answers in labels.items()}
        agreed[key] = (
            qc_grading.agreed_grade(values)
            if kind == "ordinal"
            else next(iter(labels.values())).get(key)
        )
    return disputes, agreed


def protocol_snapshot(protocol: ReadingProtocol) -> dict:
    return {
        "readers_per_case": protocol.readers_per_case,
        "phases": protocol.phases,
        "match_rule": protocol.match_rule,
        "match_threshold": protocol.match_threshold,
        "auto_accept_min_readers": protocol.auto_accept_min_readers,
        "auto_accept_same_type": protocol.auto_accept_same_type,
        "auto_accept_ordinal_tolerance": protocol.auto_accept_ordinal_tolerance,
        "drop_below_readers": protocol.drop_below_readers,
        "size_tolerance_mm": protocol.size_tolerance_mm,
        "grade_rule": protocol.grade_rule,
        "grade_difference": protocol.grade_difference,
        "arbitration_mode": protocol.arbitration_mode,
        "consensus_method": consensus_method(protocol),
    }


def consensus_method(protocol: ReadingProtocol) -> str:
    """How the readers' contours of a finding are merged: the protocol's consensus
    method (majority vote or STAPLE); majority vote for anything else."""
    method = protocol.consensus_method
    return method if method in qc_consensus.METHODS else AUTO_CONSENSUS_METHOD


def final_reads(case: Case) -> list[ReadingTask]:
    """The reads of the protocol's last phase (not qualification reads)."""
    phase = max(case.project.protocol.phases)
    return list(ReadingTask.objects.operational().filter(case=case, phase=phase).order_by("id"))


@transaction.atomic
def settle_case(case_id: int, *, actor=None, reads=None, forced: str = "") -> Settlement:
    """Match, apply the auto-consensus rule, then adjudicate or open arbitration.

    Idempotent: a case already settled returns its settlement unchanged.
    `reads` and `forced` are for a manager's forced settle (services/console.py):
    the submitted reads to settle on, and the reason, kept with the settlement.
    """
    case = (
        Case.objects.select_for_update(of=("self",))
        .select_related("project__protocol")
        .get(pk=case_id)
    )
    existing = Settlement.objects.filter(case=case).order_by("round").first()
    if existing is not None:
        return existing
    if case.state != Case.State.READING:
        raise SettleError(f"Case {case} is in {case.state}, not reading.")
    protocol = case.project.protocol
    if reads is None:
        reads = final_reads(case)
    if not reads or any(t.state != ReadingTask.State.SUBMITTED for t in reads):
        raise SettleError(f"Case {case}: not every read of the last phase is submitted.")
    grid = grid_for_series(case.series)
    if protocol.match_rule in qc_matching.GRID_RULES and grid is None:
        raise SettleError(f"Case {case}: the {protocol.match_rule} rule needs the series' images.")
    findings = {
        str(f.uid): f
        for f in Finding.objects.filter(task__in=reads).order_by("task_id", "created_at", "id")
    }
    marks = [mark_for_finding(f, grid) for f in findings.values()]
    clusters = qc_matching.cluster(marks, protocol.match_rule, protocol.match_threshold, grid)
    rule = consensus_rule(protocol)
    verdicts = qc_consensus.evaluate(clusters, rule, grid)
    labels = {
        str(label.task_id): label.values for label in CaseLabel.objects.filter(task__in=reads)
    }
    for task in reads:
        labels.setdefault(str(task.pk), {})
    label_disputes, agreed_labels = settle_labels(labels, protocol)
    disputed_keys = {d["key"] for d in label_disputes}
    # Anonymise reads in stored reasons: read ids are task ids, not people.
    disputed = [v for v in verdicts if v.verdict == qc_consensus.DISPUTE]
    outcome = (
        Settlement.Outcome.ARBITRATION
        if disputed or label_disputes
        else Settlement.Outcome.ADJUDICATED
    )
    settlement = Settlement.objects.create(
        case=case,
        round=1,
        phase=max(t.phase for t in reads),
        protocol={**protocol_snapshot(protocol), **({"forced": forced} if forced else {})},
        label_disputes=label_disputes,
        label_consensus=agreed_labels,
        outcome=outcome,
    )
    now = timezone.now()
    summary = []
    kinds = rule.attribute_kinds
    for number, verdict in enumerate(verdicts, start=1):
        c = verdict.cluster
        geometry = qc_consensus.consensus_geometry(c.marks, grid, consensus_method(protocol))
        centre = c.centre_mm or (None, None, None)
        row = Cluster.objects.create(
            settlement=settlement,
            case=case,
            number=number,
            finding_type=c.finding_type,
            readers=len(set(c.readers)),
            centre_x_mm=centre[0],
            centre_y_mm=centre[1],
            centre_z_mm=centre[2],
            match_rule=c.rule,
            match_threshold=c.threshold,
            threshold_used=c.threshold_used,
            tightened_on=c.tightened_on,
            verdict=verdict.verdict,
            reasons=list(verdict.reasons),
            consensus_geometry=geometry.as_geometry(),
            consensus_attributes=qc_consensus.merge_attributes(
                c.marks, kinds.get(c.finding_type, {})
            ),
            diameter_mm=geometry.diameter_mm,
        )
        members = [findings[m.id] for m in c.marks]
        row.findings.set(members)
        if verdict.verdict == qc_consensus.ACCEPT:
            ref = write_reference(
                row,
                status=ReferenceFinding.Status.INCLUDED,
                decision=ReferenceFinding.Decision.AUTO_CONSENSUS,
                finding_type=row.finding_type,
                geometry=row.consensus_geometry,
                attributes=row.consensus_attributes,
                diameter_mm=row.diameter_mm,
                supporting=members,
                when=now,
            )
            ref_key = str(ref.ref_key)
        else:
            ref_key = None
        summary.append(
            {
                "cluster": number,
                "finding_type": c.finding_type,
                "readers": row.readers,
                "verdict": verdict.verdict,
                "reasons": [r["code"] for r in verdict.reasons],
                "threshold_used": c.threshold_used,
                "reference": ref_key,
            }
        )
    audit.record(
        "adjudication.settled",
        actor=actor,
        obj=settlement,
        project_id=case.project_id,
        data={
            "case_id": case.pk,
            "match_rule": protocol.match_rule,
            "match_threshold": protocol.match_threshold,
            "clusters": summary,
            "label_disputes": sorted(disputed_keys),
            "outcome": outcome,
        },
    )
    if outcome == Settlement.Outcome.ADJUDICATED:
        write_labels(case, agreed_labels, {}, ReferenceFinding.Decision.AUTO_CONSENSUS, now)
        transition(case, Case.State.ADJUDICATED, by=actor, reason="auto-consensus")
    else:
        transition(case, Case.State.ARBITRATION, by=actor, reason="disputes after matching")
        items = {
            "clusters": [
                settlement.clusters.get(number=n).pk
                for n, v in enumerate(verdicts, start=1)
                if v.verdict == qc_consensus.DISPUTE
            ],
            "labels": sorted(disputed_keys),
        }
        open_arbitration(case, round=1, items=items, by=actor)
    return settlement


# ---------------------------------------------------------------- assigning


def arbitrator_candidates(case: Case, exclude=()) -> list:
    """Arbitrators of the project who did not read the case, least loaded first."""
    User = get_user_model()
    readers = ReadingTask.objects.filter(case=case).values("reader_id")
    ids = Membership.objects.filter(project=case.project, role=Role.ARBITRATOR).values("user_id")
    return list(
        User.objects.filter(pk__in=ids, is_active=True)
        .exclude(pk__in=readers)
        .exclude(pk__in=[u.pk for u in exclude])
        .annotate(
            open_tasks=Count(
                "arbitration_tasks",
                filter=~Q(arbitration_tasks__state=ArbitrationTask.State.SIGNED),
            )
        )
        .order_by("open_tasks", "pk")
    )


def open_arbitration(case: Case, *, round: int, items: dict, by=None) -> list[ArbitrationTask]:
    """Create the round's tasks per the protocol's arbitration mode."""
    mode = case.project.protocol.arbitration_mode
    roles = (
        [ArbitrationTask.Role.SOLE]
        if mode == ReadingProtocol.ArbitrationMode.SINGLE
        else [ArbitrationTask.Role.FIRST, ArbitrationTask.Role.SECOND]
    )
    people = arbitrator_candidates(case)
    if len(people) < len(roles):
        raise ArbitrationError(
            f"Case {case} needs {len(roles)} arbitrator(s) who did not read it; "
            f"the project has {len(people)}."
        )
    return [
        create_task(case, role, person, round, items, by)
        for role, person in zip(roles, people[: len(roles)], strict=True)
    ]


def create_task(case, role, person, round, items, by) -> ArbitrationTask:
    task = ArbitrationTask.objects.create(
        case=case, arbitrator=person, role=role, round=round, items=items
    )
    audit.record(
        "arbitration.assigned",
        actor=by,
        obj=task,
        project_id=case.project_id,
        data={"role": role, "round": round, "arbitrator_id": person.pk, "items": items},
    )
    return task


# ---------------------------------------------------------------- decisions


def merged_geometries(cluster_id: int) -> dict:
    """What "accept merged" would sign for a cluster, per method: the majority-vote
    and the STAPLE contours of its members ({} when they cannot be merged, e.g.
    points, or the series has no grid). The arbitrator sees exactly this shape."""
    cluster = Cluster.objects.select_related("case__series").get(pk=cluster_id)
    members = list(cluster.findings.order_by("task_id", "created_at", "id"))
    if len(members) < 2:
        return {}
    grid = grid_for_series(cluster.case.series)
    if grid is None:
        return {}
    marks = [mark_for_finding(f, grid) for f in members]
    out = {}
    for method in qc_consensus.METHODS:
        try:
            merged = qc_consensus.consensus_geometry(marks, grid, method)
        except (ValueError, RuntimeError):
            continue
        geometry = merged.as_geometry()
        if geometry and geometry.get("shapes"):
            out[method] = geometry
    return out
