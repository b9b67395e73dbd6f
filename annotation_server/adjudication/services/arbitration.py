"""Arbitration: draft decisions, signatures, tie-breaks and re-arbitration."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Max
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.accounts import lockout
from annotation_server.adjudication.marks import grid_for_series, mark_for_finding
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.adjudication.services.common import (
    ACTIONS,
    REASON_CODES,
    ArbitrationError,
    SignatureError,
    reference_centre,
    shapes_for,
)
from annotation_server.adjudication.services.reference import (
    write_added,
    write_labels,
    write_reference,
)
from annotation_server.adjudication.services.settle import (
    arbitrator_candidates,
    consensus_method,
    consensus_rule,
    create_task,
    open_arbitration,
)
from annotation_server.audit import services as audit
from annotation_server.projects import schema as schema_rules
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import ARBITRATE, MANAGE, has_project_perm
from annotation_server.projects.services import TransitionError, transition
from annotation_server.reading.geometry import validate_geometry
from annotation_server.reading.services import VersionConflict
from qc import consensus as qc_consensus
from qc import matching as qc_matching


def check_arbitrator(task: ArbitrationTask, user) -> None:
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
    unknown = set(decisions) - {"clusters", "labels", "added"}
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
    added = decisions.get("added", []) or []
    if not isinstance(added, list):
        raise ValidationError("decisions.added must be a list of findings")
    errors.extend(_check_added(added, types, complete))
    if complete:
        missing = [f"cluster {c}" for c in clusters if c not in given]
        missing += [f"case field {k}" for k in sorted(wanted_labels) if k not in labels]
        if missing:
            errors.append("undecided: " + ", ".join(missing))
    if errors:
        raise ValidationError(errors)
    cleaned = {"clusters": dict(given), "labels": dict(labels)}
    if added:
        cleaned["added"] = list(added)
    return cleaned


def _check_added(added: list, types: dict, complete: bool) -> list[str]:
    """A finding no reader marked, added by the arbitrator: a key (UUID, kept
    across drafts), a type of the schema, a geometry that type allows, its
    attributes, and a reason. A draft may lack the shape (the arbitrator starts a
    finding, then draws it) and the reason; signing needs both."""
    import uuid as uuid_

    errors: list[str] = []
    seen = set()
    for i, d in enumerate(added, 1):
        where = f"added finding {i}"
        if not isinstance(d, dict):
            errors.append(f"{where}: must be an object")
            continue
        try:
            key = str(uuid_.UUID(str(d.get("key"))))
        except ValueError:
            errors.append(f"{where}: 'key' must be a UUID")
            continue
        if key in seen:
            errors.append(f"{where}: key {key} appears twice")
        seen.add(key)
        finding_type = d.get("finding_type")
        if finding_type not in types:
            errors.append(f"{where}: unknown finding type {finding_type!r}")
            continue
        if complete or d.get("geometry") is not None:
            try:
                kind = validate_geometry(d.get("geometry"))
                if kind not in types[finding_type].get("geometry", []):
                    errors.append(f"{where}: a {finding_type} cannot be drawn as {kind}")
            except schema_rules.SchemaError as exc:
                errors.extend(f"{where}: {e}" for e in exc.errors)
        attrs = d.get("attributes") or {}
        if not isinstance(attrs, dict):
            errors.append(f"{where}: attributes must be an object")
        else:
            try:
                schema_rules.validate_values(
                    types[finding_type].get("attributes", []), attrs, complete=complete, where=where
                )
            except schema_rules.SchemaError as exc:
                errors.extend(exc.errors)
        if complete or d.get("reason_code"):
            errors.extend(_check_reason(where, d, True))
    return errors


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
    if action == "accept_merged" and "method" in d and d["method"] not in qc_consensus.METHODS:
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
    check_arbitrator(task, user)
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
    task: ArbitrationTask,
    user,
    password: str,
    *,
    expected_version: int | None,
    request: HttpRequest | None = None,
) -> ArbitrationTask:
    """Sign the decisions with the password re-entered (an electronic signature).

    `expected_version` is the version of the decisions the signer saw: missing or
    stale, nothing is signed (VersionConflict), so a signature never covers a
    draft that another tab saved after the signer looked. The password is checked
    like a sign-in (accounts.lockout, with `request`): wrong ones count towards the
    account's lockout, and a locked account cannot sign. A refusal is audited
    (committed on its own, outside the signing transaction, so it is never rolled
    back with it)."""
    task = ArbitrationTask.objects.select_related("case__project").get(pk=task.pk)
    check_arbitrator(task, user)
    if expected_version is None:
        raise VersionConflict(gettext("Send the version of the decisions you saw."), task.version)
    if expected_version != task.version:
        raise VersionConflict(
            gettext("The decisions changed since you loaded them; nothing was signed."),
            task.version,
        )
    checked = lockout.verify_password(request, user, password)
    if checked is not lockout.PasswordCheck.CORRECT:
        locked = checked is lockout.PasswordCheck.LOCKED
        audit.record(
            "arbitration.signature_refused",
            actor=user,
            obj=task,
            project_id=task.case.project_id,
            data={"reason": "account locked" if locked else "wrong password"},
        )
        if locked:
            raise lockout.AccountLocked(lockout.lockout_message())
        raise SignatureError("The password is not correct; nothing was signed.")
    return _sign(task, user, expected_version)


@transaction.atomic
def _sign(task: ArbitrationTask, user, expected_version: int) -> ArbitrationTask:
    task = ArbitrationTask.objects.select_related("case__project__protocol").get(pk=task.pk)
    check_arbitrator(task, user)
    if expected_version != task.version:
        raise VersionConflict(
            gettext("The decisions changed since you loaded them; nothing was signed."),
            task.version,
        )
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


def _normalised(d: dict, method: str) -> str:
    """The substance of a decision, for comparing two blind arbitrators (reasons
    and free text may differ without it being a disagreement); a merge that names
    no method is the protocol's (`method`)."""
    keep = {k: v for k, v in d.items() if k not in ("reason_code", "reason_text")}
    if keep.get("action") == "accept_merged":
        keep.setdefault("method", method)
    return json.dumps(keep, sort_keys=True)


def _disagreements(first: dict, second: dict, items: dict, method: str) -> dict:
    clusters = [
        cid
        for cid in map(str, items.get("clusters", []))
        if _normalised(first["clusters"].get(cid, {}), method)
        != _normalised(second["clusters"].get(cid, {}), method)
    ]
    labels = [
        key
        for key in items.get("labels", [])
        if json.dumps(first["labels"].get(key, {}).get("value"), sort_keys=True)
        != json.dumps(second["labels"].get(key, {}).get("value"), sort_keys=True)
    ]
    # A finding added by either blind arbitrator is never written on one signature:
    # the tie-breaker sees both proposals and decides what to add.
    added = bool(first.get("added") or second.get("added"))
    out = {"clusters": [int(c) for c in clusters], "labels": labels}
    if added:
        out["added"] = True
    return out


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
        split = _disagreements(
            first.decisions, second.decisions, first.items, consensus_method(case.project.protocol)
        )
        if not split["clusters"] and not split["labels"] and not split.get("added"):
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
        create_task(case, Role_.TIEBREAK, people[0], task.round, split, user)
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
            # A merge that names no method signs the protocol's consensus rule.
            method = d.get("method") or consensus_method(case.project.protocol)
            merged = qc_consensus.consensus_geometry(marks, grid, method)
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
                    shapes=shapes_for(geometry),
                    attributes=d.get("attributes") or {},
                ),
                grid,
            )
        attributes.update(d.get("attributes") or {})
        status = {
            "reject": ReferenceFinding.Status.REJECTED,
            "exclude": ReferenceFinding.Status.EXCLUDED,
        }.get(action, ReferenceFinding.Status.INCLUDED)
        ref = write_reference(
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
            grid_centre=reference_centre(geometry, cluster, grid),
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
    # Findings no reader marked: the sole arbitrator's or the tie-breaker's additions.
    deciding = [
        (t, d)
        for t, d in sources
        if t.role in (ArbitrationTask.Role.SOLE, ArbitrationTask.Role.TIEBREAK)
    ]
    if deciding:
        task, decisions = deciding[-1]
        protocol = case.project.protocol
        for d in decisions.get("added") or []:
            geometry = d["geometry"]
            if grid is None:
                grid = grid_for_series(case.series)
            ref = write_added(
                case,
                key=d["key"],
                finding_type=d["finding_type"],
                geometry=geometry,
                attributes=d.get("attributes") or {},
                diameter_mm=qc_consensus.mark_size_mm(
                    qc_matching.Mark(
                        id="added",
                        reader="arbitrator",
                        finding_type=d["finding_type"],
                        centre_mm=None,
                        kind=geometry["kind"],
                        shapes=shapes_for(geometry),
                        attributes=d.get("attributes") or {},
                    ),
                    grid,
                ),
                centre=geometry.get("centre_mm") or (None, None, None),
                when=now,
                task=task,
                by=task.arbitrator,
                reason_code=d.get("reason_code", ""),
                reason_text=d.get("reason_text", ""),
                match_rule=protocol.match_rule,
                match_threshold=protocol.match_threshold,
            )
            written.append(
                {
                    "added": True,
                    "ref_key": str(ref.ref_key),
                    "revision": ref.revision,
                    "finding_type": ref.finding_type,
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
        write_labels(
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
