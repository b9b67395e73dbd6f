"""Settling a case's reads and arbitrating what the protocol cannot settle.

`reads_complete` (called when the last phase's reads are all in) queues the
"adjudication.settle" job. `settle_case` matches the final-phase reads
(qc.matching), applies the protocol's auto-consensus rule (qc.consensus),
writes the auto-accepted reference findings and either closes the case
(adjudicated) or opens arbitration tasks. Arbitrators save draft decisions
with optimistic locking and sign with their password; signing writes the
reference standard, as new revisions, never overwrites.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from annotation_server.accounts.models import Role
from annotation_server.adjudication.marks import grid_for_series, mark_for_finding
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.audit import services as audit
from annotation_server.projects import schema as schema_rules
from annotation_server.projects.models import Case, Membership, ReadingProtocol
from annotation_server.projects.permissions import ARBITRATE, MANAGE, has_project_perm
from annotation_server.projects.services import TransitionError, transition
from annotation_server.reading.geometry import validate_geometry
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from annotation_server.reading.services import VersionConflict
from qc import consensus as qc_consensus
from qc import matching as qc_matching

# Sizes of one lesion as measured by different readers may differ by this much
# before the size alone sends a cluster to arbitration. The protocol model has
# no field for it yet; None would switch the check off.
SIZE_TOLERANCE_MM = 3.0
# The geometry written for auto-accepted clusters.
AUTO_CONSENSUS_METHOD = "majority"

ACTIONS = ("accept_reader", "accept_merged", "edit", "reject", "exclude")

# Fixed, translatable reason codes for arbitration decisions.
REASON_CODES: dict[str, Any] = {
    "existence_confirmed": _("existence confirmed on review (e.g. thin slices)"),
    "best_delineation": _("the chosen contour delineates the finding best"),
    "merged_delineation": _("the merged contour represents the readers best"),
    "attribute_corrected": _("attributes corrected on review"),
    "geometry_corrected": _("geometry corrected on review"),
    "not_a_finding": _("not a finding (e.g. vessel, scar, artefact)"),
    "below_size_limit": _("excluded: below the size limit (e.g. < 3 mm)"),
    "outside_scope": _("excluded: outside the dataset's scope"),
    "indeterminate": _("excluded: cannot be determined on these images"),
    "label_confirmed": _("case-level answer confirmed on review"),
    "other": _("other (explained in the text)"),
}


class SettleError(Exception):
    """The case cannot be settled now (reads missing, no grid for the rule...)."""


class ArbitrationError(Exception):
    """An arbitration step is not possible (no arbitrator, incomplete decisions...)."""


class SignatureError(PermissionDenied):
    """The password given to sign was wrong."""


# ---------------------------------------------------------------- settling


def reads_complete(case: Case, actor=None):
    """Every read of the case's last phase is in: queue matching and settling."""
    from annotation_server.jobs.services import enqueue

    audit.record("adjudication.reads_complete", actor=actor, obj=case, project_id=case.project_id)
    return enqueue(
        "adjudication.settle", params={"case_id": case.pk}, project=case.project, user=actor
    )


def settle_job(ctx) -> dict:
    """Job handler "adjudication.settle"."""
    settlement = settle_case(ctx.params["case_id"])
    counts = dict(
        settlement.clusters.values_list("verdict").annotate(n=Count("id")).order_by("verdict")
    )
    ctx.log(f"case {settlement.case_id}: {counts}, outcome {settlement.outcome}")
    return {
        "case_id": settlement.case_id,
        "settlement_id": settlement.pk,
        "outcome": settlement.outcome,
        "clusters": counts,
        "label_disputes": len(settlement.label_disputes),
    }


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
        size_tolerance_mm=SIZE_TOLERANCE_MM,
        attribute_kinds=kinds,
        case_field_kinds={f["key"]: f["kind"] for f in definition.get("case_fields", [])},
    )


def _protocol_snapshot(protocol: ReadingProtocol) -> dict:
    return {
        "readers_per_case": protocol.readers_per_case,
        "phases": protocol.phases,
        "match_rule": protocol.match_rule,
        "match_threshold": protocol.match_threshold,
        "auto_accept_min_readers": protocol.auto_accept_min_readers,
        "auto_accept_same_type": protocol.auto_accept_same_type,
        "auto_accept_ordinal_tolerance": protocol.auto_accept_ordinal_tolerance,
        "drop_below_readers": protocol.drop_below_readers,
        "size_tolerance_mm": SIZE_TOLERANCE_MM,
        "arbitration_mode": protocol.arbitration_mode,
        "consensus_method": AUTO_CONSENSUS_METHOD,
    }


def final_reads(case: Case) -> list[ReadingTask]:
    """The reads of the protocol's last phase (not qualification reads)."""
    phase = max(case.project.protocol.phases)
    return list(
        ReadingTask.objects.filter(case=case, phase=phase, attempt__isnull=True).order_by("id")
    )


@transaction.atomic
def settle_case(case_id: int, *, actor=None) -> Settlement:
    """Match, apply the auto-consensus rule, then adjudicate or open arbitration.

    Idempotent: a case already settled returns its settlement unchanged.
    """
    case = Case.objects.select_for_update().select_related("project__protocol").get(pk=case_id)
    existing = Settlement.objects.filter(case=case).order_by("round").first()
    if existing is not None:
        return existing
    if case.state != Case.State.READING:
        raise SettleError(f"Case {case} is in {case.state}, not reading.")
    protocol = case.project.protocol
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
    label_disputes = qc_consensus.label_disagreements(labels, rule.case_field_kinds)
    disputed_keys = {d["key"] for d in label_disputes}
    agreed_labels = {
        key: next(iter(labels.values())).get(key)
        for key in rule.case_field_kinds
        if key not in disputed_keys and any(key in v for v in labels.values())
    }
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
        phase=max(protocol.phases),
        protocol=_protocol_snapshot(protocol),
        label_disputes=label_disputes,
        label_consensus=agreed_labels,
        outcome=outcome,
    )
    now = timezone.now()
    summary = []
    kinds = rule.attribute_kinds
    for number, verdict in enumerate(verdicts, start=1):
        c = verdict.cluster
        geometry = qc_consensus.consensus_geometry(c.marks, grid, AUTO_CONSENSUS_METHOD)
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
            ref = _write_reference(
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
        _write_labels(case, agreed_labels, {}, ReferenceFinding.Decision.AUTO_CONSENSUS, now)
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
        _create_task(case, role, person, round, items, by)
        for role, person in zip(roles, people[: len(roles)], strict=True)
    ]


def _create_task(case, role, person, round, items, by) -> ArbitrationTask:
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


def _check_arbitrator(task: ArbitrationTask, user) -> None:
    if task.arbitrator_id != user.pk:
        raise PermissionDenied("Only the task's arbitrator can decide it.")
    if not has_project_perm(user, task.case.project, ARBITRATE):
        raise PermissionDenied("You no longer hold the arbitrator role in this project.")
    if task.state == ArbitrationTask.State.SIGNED:
        raise ArbitrationError("This arbitration is signed and read-only.")
    if task.case.state != Case.State.ARBITRATION:
        raise ArbitrationError(f"The case is in {task.case.state}, not in arbitration.")


def task_clusters(task: ArbitrationTask) -> list[Cluster]:
    ids = task.items.get("clusters", [])
    return list(
        Cluster.objects.filter(pk__in=ids)
        .prefetch_related("findings__task__case__project", "findings__task__reader__profile")
        .order_by("number")
    )


def validate_decisions(task: ArbitrationTask, decisions: Any, *, complete: bool) -> dict:
    """Structure and content checks; `complete` (at signing) needs every item decided."""
    if not isinstance(decisions, dict):
        raise ValidationError("decisions must be an object")
    unknown = set(decisions) - {"clusters", "labels"}
    if unknown:
        raise ValidationError(f"unknown keys: {', '.join(sorted(unknown))}")
    errors: list[str] = []
    definition = task.case.project.label_schema.definition
    types = {t["key"]: t for t in definition.get("finding_types", [])}
    clusters = {str(c.pk): c for c in task_clusters(task)}
    given = decisions.get("clusters", {}) or {}
    if not isinstance(given, dict):
        raise ValidationError("decisions.clusters must map cluster ids to decisions")
    for cid, d in given.items():
        where = f"cluster {cid}"
        if cid not in clusters:
            errors.append(f"{where} is not part of this task")
            continue
        if not isinstance(d, dict) or d.get("action") not in ACTIONS:
            errors.append(f"{where}: action must be one of {', '.join(ACTIONS)}")
            continue
        errors.extend(_check_cluster_decision(where, clusters[cid], d, types, complete))
    fields = {f["key"]: f for f in definition.get("case_fields", [])}
    wanted_labels = set(task.items.get("labels", []))
    labels = decisions.get("labels", {}) or {}
    if not isinstance(labels, dict):
        raise ValidationError("decisions.labels must map case fields to decisions")
    for key, d in labels.items():
        where = f"case field {key}"
        if key not in wanted_labels or key not in fields:
            errors.append(f"{where} is not part of this task")
            continue
        if not isinstance(d, dict) or "value" not in d:
            errors.append(f"{where}: give a value")
            continue
        try:
            schema_rules.validate_values(
                [fields[key]], {key: d["value"]}, complete=complete, where="case"
            )
        except schema_rules.SchemaError as exc:
            errors.extend(exc.errors)
        errors.extend(_check_reason(where, d, complete))
    if complete:
        missing = [f"cluster {c}" for c in clusters if c not in given]
        missing += [f"case field {k}" for k in sorted(wanted_labels) if k not in labels]
        if missing:
            errors.append("undecided: " + ", ".join(missing))
    if errors:
        raise ValidationError(errors)
    return {"clusters": dict(given), "labels": dict(labels)}


def _check_reason(where: str, d: dict, complete: bool) -> list[str]:
    code = d.get("reason_code")
    if code in (None, "") and not complete:
        return []
    if code not in REASON_CODES:
        return [f"{where}: reason_code must be one of {', '.join(REASON_CODES)}"]
    if code == "other" and not str(d.get("reason_text", "")).strip():
        return [f"{where}: reason 'other' needs an explanation"]
    return []


def _check_cluster_decision(where, cluster, d, types, complete) -> list[str]:
    errors = _check_reason(where, d, complete)
    action = d["action"]
    finding_type = d.get("finding_type", cluster.finding_type)
    if finding_type not in types:
        return [*errors, f"{where}: unknown finding type {finding_type!r}"]
    if action == "accept_reader":
        members = {str(f.uid) for f in cluster.findings.all()}
        if d.get("finding") not in members:
            errors.append(f"{where}: 'finding' must name one of the cluster's findings")
    if action == "accept_merged" and d.get("method", "majority") not in qc_consensus.METHODS:
        errors.append(f"{where}: method must be one of {', '.join(qc_consensus.METHODS)}")
    if action == "edit":
        try:
            kind = validate_geometry(d.get("geometry"))
            if kind not in types[finding_type].get("geometry", []):
                errors.append(f"{where}: a {finding_type} cannot be drawn as {kind}")
        except schema_rules.SchemaError as exc:
            errors.extend(f"{where}: {e}" for e in exc.errors)
    if action in ("accept_reader", "accept_merged", "edit") and (
        "attributes" in d or action == "edit"
    ):
        attrs = d.get("attributes") or {}
        if not isinstance(attrs, dict):
            errors.append(f"{where}: attributes must be an object")
        else:
            allowed = {a["key"]: a for a in types[finding_type].get("attributes", [])}
            try:
                schema_rules.validate_values(
                    list(allowed.values()),
                    attrs,
                    complete=complete and action == "edit",
                    where=where,
                )
            except schema_rules.SchemaError as exc:
                errors.extend(exc.errors)
    return errors


@transaction.atomic
def save_decisions(
    task: ArbitrationTask, user, decisions: dict, *, expected_version: int | None
) -> ArbitrationTask:
    """Save a draft. A stale version (another tab, another person) raises
    VersionConflict and changes nothing; the caller reloads and merges."""
    task = ArbitrationTask.objects.select_related("case__project").get(pk=task.pk)
    _check_arbitrator(task, user)
    cleaned = validate_decisions(task, decisions, complete=False)
    if expected_version is None:
        raise VersionConflict("Send the version you edited.", task.version)
    changed = ArbitrationTask.objects.filter(
        pk=task.pk,
        version=expected_version,
        state__in=[ArbitrationTask.State.ASSIGNED, ArbitrationTask.State.IN_PROGRESS],
    ).update(decisions=cleaned, version=F("version") + 1, state=ArbitrationTask.State.IN_PROGRESS)
    if changed != 1:
        current = ArbitrationTask.objects.filter(pk=task.pk).values_list("version", flat=True)
        raise VersionConflict(
            f"These decisions were saved elsewhere (version {current.first()}, you edited "
            f"{expected_version}). Reload to see the newer version.",
            current.first(),
        )
    if task.state == ArbitrationTask.State.ASSIGNED:
        audit.record("arbitration.started", actor=user, obj=task, project_id=task.case.project_id)
    task.refresh_from_db()
    return task


def decisions_hash(task: ArbitrationTask, decisions: dict) -> str:
    """What a signature covers: the task, case, round, role and decisions, canonical JSON."""
    payload = {
        "task": task.pk,
        "case": task.case_id,
        "round": task.round,
        "role": task.role,
        "decisions": decisions,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def sign(
    task: ArbitrationTask, user, password: str, *, expected_version: int | None = None
) -> ArbitrationTask:
    """Sign the decisions with the password re-entered (an electronic signature).

    A wrong password is refused and the refusal is audited (committed on its own,
    outside the signing transaction, so it is never rolled back with it)."""
    task = ArbitrationTask.objects.select_related("case__project").get(pk=task.pk)
    _check_arbitrator(task, user)
    if not password or not user.check_password(password):
        audit.record(
            "arbitration.signature_refused",
            actor=user,
            obj=task,
            project_id=task.case.project_id,
            data={"reason": "wrong password"},
        )
        raise SignatureError("The password is not correct; nothing was signed.")
    return _sign(task, user, expected_version)


@transaction.atomic
def _sign(task: ArbitrationTask, user, expected_version: int | None) -> ArbitrationTask:
    task = ArbitrationTask.objects.select_related("case__project__protocol").get(pk=task.pk)
    _check_arbitrator(task, user)
    if expected_version is not None and expected_version != task.version:
        raise VersionConflict("The decisions changed since you loaded them.", task.version)
    cleaned = validate_decisions(task, task.decisions, complete=True)
    digest = decisions_hash(task, cleaned)
    now = timezone.now()
    changed = (
        ArbitrationTask.objects.filter(pk=task.pk, version=task.version)
        .exclude(state=ArbitrationTask.State.SIGNED)
        .update(
            state=ArbitrationTask.State.SIGNED,
            signed_at=now,
            signature_hash=digest,
            version=F("version") + 1,
        )
    )
    if changed != 1:
        raise VersionConflict("The decisions changed while signing; reload.", None)
    audit.record(
        "arbitration.signed",
        actor=user,
        obj=task,
        project_id=task.case.project_id,
        data={
            "sha256": digest,
            "role": task.role,
            "round": task.round,
            "decisions": cleaned,
        },
    )
    task.refresh_from_db()
    _after_signature(task, user)
    task.refresh_from_db()
    return task


def _normalised(d: dict) -> str:
    """The substance of a decision, for comparing two blind arbitrators (reasons
    and free text may differ without it being a disagreement)."""
    keep = {k: v for k, v in d.items() if k not in ("reason_code", "reason_text")}
    if keep.get("action") == "accept_merged":
        keep.setdefault("method", "majority")
    return json.dumps(keep, sort_keys=True)


def _disagreements(first: dict, second: dict, items: dict) -> dict:
    clusters = [
        cid
        for cid in map(str, items.get("clusters", []))
        if _normalised(first["clusters"].get(cid, {}))
        != _normalised(second["clusters"].get(cid, {}))
    ]
    labels = [
        key
        for key in items.get("labels", [])
        if json.dumps(first["labels"].get(key, {}).get("value"), sort_keys=True)
        != json.dumps(second["labels"].get(key, {}).get("value"), sort_keys=True)
    ]
    return {"clusters": [int(c) for c in clusters], "labels": labels}


def _after_signature(task: ArbitrationTask, user) -> None:
    case = task.case
    tasks = {t.role: t for t in ArbitrationTask.objects.filter(case=case, round=task.round)}
    Role_ = ArbitrationTask.Role
    if task.role == Role_.SOLE:
        _apply(case, task.round, [(task, task.decisions)], user)
        transition(case, Case.State.ADJUDICATED, by=user, reason="arbitration signed")
        return
    if task.role in (Role_.FIRST, Role_.SECOND):
        first, second = tasks.get(Role_.FIRST), tasks.get(Role_.SECOND)
        if not (first and second and all(t.state == t.State.SIGNED for t in (first, second))):
            return  # wait for the other blind arbitrator
        split = _disagreements(first.decisions, second.decisions, first.items)
        if not split["clusters"] and not split["labels"]:
            audit.record(
                "arbitration.blind_agreed",
                actor=user,
                obj=case,
                project_id=case.project_id,
                data={"round": task.round},
            )
            _apply(case, task.round, [(first, first.decisions)], user)
            transition(case, Case.State.ADJUDICATED, by=user, reason="two arbitrators agreed")
            return
        taken = [first.arbitrator, second.arbitrator]
        people = arbitrator_candidates(case, exclude=taken)
        if not people:
            raise ArbitrationError(f"Case {case} needs a third arbitrator to break the tie.")
        _create_task(case, Role_.TIEBREAK, people[0], task.round, split, user)
        audit.record(
            "arbitration.tiebreak_opened",
            actor=user,
            obj=case,
            project_id=case.project_id,
            data={"round": task.round, "disagreements": split},
        )
        return
    # Tie-break: agreed items as the blind pair decided, the rest as the third decided.
    first = tasks[Role_.FIRST]
    _apply(case, task.round, [(first, first.decisions), (task, task.decisions)], user)
    transition(case, Case.State.ADJUDICATED, by=user, reason="tie broken")


def _apply(case, round, sources: list[tuple[ArbitrationTask, dict]], user) -> None:
    """Write the reference standard from signed decisions; later sources win per item."""
    per_cluster: dict[str, tuple[ArbitrationTask, dict]] = {}
    per_label: dict[str, tuple[ArbitrationTask, dict]] = {}
    for task, decisions in sources:
        for cid, d in (decisions.get("clusters") or {}).items():
            per_cluster[str(cid)] = (task, d)
        for key, d in (decisions.get("labels") or {}).items():
            per_label[key] = (task, d)
    grid = None
    now = timezone.now()
    written = []
    clusters = Cluster.objects.filter(pk__in=[int(c) for c in per_cluster]).prefetch_related(
        "findings"
    )
    for cluster in clusters:
        task, d = per_cluster[str(cluster.pk)]
        action = d["action"]
        members = list(cluster.findings.all())
        finding_type = d.get("finding_type", cluster.finding_type)
        attributes = dict(cluster.consensus_attributes)
        geometry = cluster.consensus_geometry
        diameter = cluster.diameter_mm
        if action == "accept_reader":
            chosen = next(f for f in members if str(f.uid) == d["finding"])
            geometry = dict(chosen.geometry, source_finding=str(chosen.uid))
            attributes = dict(chosen.attributes)
            if grid is None:
                grid = grid_for_series(case.series)
            diameter = qc_consensus.mark_size_mm(mark_for_finding(chosen, grid), grid)
        elif action == "accept_merged":
            if grid is None:
                grid = grid_for_series(case.series)
            marks = [mark_for_finding(f, grid) for f in members]
            merged = qc_consensus.consensus_geometry(marks, grid, d.get("method", "majority"))
            geometry, diameter = merged.as_geometry(), merged.diameter_mm
        elif action == "edit":
            geometry = d["geometry"]
            attributes = {}
            if grid is None:
                grid = grid_for_series(case.series)
            diameter = qc_consensus.mark_size_mm(
                qc_matching.Mark(
                    id="edit",
                    reader="arbitrator",
                    finding_type=finding_type,
                    centre_mm=None,
                    kind=geometry["kind"],
                    shapes=_shapes(geometry),
                    attributes=d.get("attributes") or {},
                ),
                grid,
            )
        attributes.update(d.get("attributes") or {})
        status = {
            "reject": ReferenceFinding.Status.REJECTED,
            "exclude": ReferenceFinding.Status.EXCLUDED,
        }.get(action, ReferenceFinding.Status.INCLUDED)
        ref = _write_reference(
            cluster,
            status=status,
            decision=ReferenceFinding.Decision.ARBITRATED,
            finding_type=finding_type,
            geometry=geometry,
            attributes=attributes,
            diameter_mm=diameter,
            supporting=members,
            when=now,
            task=task,
            by=task.arbitrator,
            reason_code=d.get("reason_code", ""),
            reason_text=d.get("reason_text", ""),
            grid_centre=_centre_of(geometry, cluster, grid),
        )
        written.append(
            {
                "cluster": cluster.number,
                "ref_key": str(ref.ref_key),
                "revision": ref.revision,
                "action": action,
                "status": status,
                "task": task.pk,
            }
        )
    if per_label or not ReferenceLabels.objects.filter(case=case, is_current=True).exists():
        settlement = Settlement.objects.filter(case=case).order_by("round").first()
        current = ReferenceLabels.objects.filter(case=case, is_current=True).first()
        values = dict(
            current.values if current else (settlement.label_consensus if settlement else {})
        )
        provenance = {}
        task_for_labels = None
        for key, (task, d) in per_label.items():
            values[key] = d["value"]
            provenance[key] = {
                "decision": "arbitrated",
                "task": task.pk,
                "arbitrator_id": task.arbitrator_id,
                "reason_code": d.get("reason_code", ""),
                "reason_text": d.get("reason_text", ""),
            }
            task_for_labels = task
        _write_labels(
            case,
            values,
            provenance,
            ReferenceFinding.Decision.ARBITRATED
            if per_label
            else ReferenceFinding.Decision.AUTO_CONSENSUS,
            now,
            task=task_for_labels,
        )
    audit.record(
        "adjudication.reference_written",
        actor=user,
        obj=case,
        project_id=case.project_id,
        data={"round": round, "findings": written, "labels": sorted(per_label)},
    )


def _shapes(geometry: dict):
    from annotation_server.adjudication.marks import shapes_of

    return shapes_of(geometry)


def _centre_of(geometry: dict, cluster: Cluster, grid) -> tuple:
    from annotation_server.adjudication.marks import centre_of

    centre = centre_of(geometry, (None, None, None), grid)
    if centre is None:
        return (cluster.centre_x_mm, cluster.centre_y_mm, cluster.centre_z_mm)
    return centre


def _write_reference(
    cluster: Cluster,
    *,
    status,
    decision,
    finding_type,
    geometry,
    attributes,
    diameter_mm,
    supporting,
    when,
    task=None,
    by=None,
    reason_code="",
    reason_text="",
    grid_centre=None,
) -> ReferenceFinding:
    """A new revision of the cluster's reference finding (the first, or superseding)."""
    current = (
        ReferenceFinding.objects.select_for_update()
        .filter(ref_key=cluster.ref_key, is_current=True)
        .first()
    )
    if current is not None:
        ReferenceFinding.objects.filter(pk=current.pk).update(is_current=False)
    centre = grid_centre or (cluster.centre_x_mm, cluster.centre_y_mm, cluster.centre_z_mm)
    ref = ReferenceFinding.objects.create(
        case=cluster.case,
        ref_key=cluster.ref_key,
        revision=(current.revision + 1) if current else 1,
        is_current=True,
        supersedes=current,
        status=status,
        finding_type=finding_type,
        geometry=geometry,
        centre_x_mm=centre[0],
        centre_y_mm=centre[1],
        centre_z_mm=centre[2],
        diameter_mm=diameter_mm,
        attributes=attributes,
        decision=decision,
        arbitration_task=task,
        decided_by=by,
        decided_at=when,
        reason_code=reason_code,
        reason_text=reason_text,
        match_rule=cluster.match_rule,
        match_threshold=cluster.match_threshold,
    )
    ref.supporting_findings.set(supporting)
    return ref


def _write_labels(case, values, provenance, decision, when, task=None) -> ReferenceLabels:
    current = ReferenceLabels.objects.select_for_update().filter(case=case, is_current=True).first()
    if current is not None:
        ReferenceLabels.objects.filter(pk=current.pk).update(is_current=False)
    return ReferenceLabels.objects.create(
        case=case,
        revision=(current.revision + 1) if current else 1,
        is_current=True,
        supersedes=current,
        values=values,
        provenance=provenance,
        decision=decision,
        arbitration_task=task,
        decided_by=task.arbitrator if task else None,
        decided_at=when,
    )


# ---------------------------------------------------------------- re-arbitration


@transaction.atomic
def reopen(
    case: Case,
    *,
    by,
    reason: str,
    clusters: list[int] | None = None,
    labels: list[str] | None = None,
) -> list[ArbitrationTask]:
    """Re-arbitrate an adjudicated (or frozen) case: a new round whose signed
    decisions write new reference revisions; the old ones stay as history."""
    if not has_project_perm(by, case.project, MANAGE):
        raise PermissionDenied("Only a project manager can reopen a case.")
    if not reason.strip():
        raise ValidationError("Re-arbitration needs a reason.")
    case = Case.objects.select_for_update().get(pk=case.pk)
    settlement = Settlement.objects.filter(case=case).order_by("round").first()
    if settlement is None:
        raise TransitionError(f"Case {case} was never settled.")
    last = ArbitrationTask.objects.filter(case=case).aggregate(r=Max("round"))["r"] or 1
    round_ = max(last, settlement.round) + 1
    all_clusters = list(settlement.clusters.values_list("pk", flat=True))
    chosen = [c for c in all_clusters if clusters is None or c in set(clusters)]
    kinds = consensus_rule(case.project.protocol).case_field_kinds
    fields = [k for k, v in kinds.items() if v != "text" and (labels is None or k in labels)]
    items = {"clusters": chosen, "labels": fields if labels is not None else []}
    transition(case, Case.State.ARBITRATION, by=by, reason=reason)
    audit.record(
        "adjudication.reopened",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={"round": round_, "reason": reason, "items": items},
    )
    return open_arbitration(case, round=round_, items=items, by=by)
