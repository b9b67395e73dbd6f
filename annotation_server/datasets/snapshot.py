"""What a frozen version keeps: a JSON snapshot of each case and of the project,
and the list of live rows that went into it (`FrozenRow`).

`case_snapshot(case)` returns (snapshot, rows): the snapshot holds the case and
its images' identity and hashes, every read of every phase with its findings
(each with its origin: source and, for a model-sourced one, the assist model's
name, version and weights sha256) and case-level answers, every settlement with
its clusters, every arbitration task with its decisions, every revision of the
reference standard (findings and case-level labels, with which were current),
the measurements of every finding (a reader's as stored with it, Finding.
measurements; a reference finding's as stored with its revision, measured when
written by the same code, reading.measurements; older revisions measured here),
the QC reports, and model assistance (`assist`: whether the case is in the
protocol's no-assistance arm, the proposals each model version made on it, and
every reader's disposition of a proposal). `rows` names the live rows read for
it, by table, for the triggers. Proposals and dispositions are not frozen rows
(a new model run marks old proposals not current); the snapshot keeps what they
said at freeze.

`project_snapshot(project, case_snapshots)` holds the project's identity, the
reading protocol, the label schema, the QC and de-identification profiles, the
roster (members and everyone who read or arbitrated a case of the version) and
every submitted qualification attempt with its thresholds.

Times are ISO 8601 in UTC; people appear by pseudonym (their user id is kept
for the database's own joins, never exported).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import UTC

from django.db.models import Count

from annotation_server import __version__
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.imaging.models import Instance
from annotation_server.projects.models import Case, Membership, Project
from annotation_server.qualification.models import QualificationAttempt, QualificationTest
from annotation_server.quality.models import QcReport
from annotation_server.reading.measurements import measure_finding
from annotation_server.reading.models import (
    AssistModelVersion,
    CaseLabel,
    Finding,
    Proposal,
    ProposalDisposition,
    ReadingTask,
)

Rows = dict[str, set[int]]


def canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_of(data) -> str:
    return hashlib.sha256(canonical(data)).hexdigest()


def iso(moment) -> str:
    if moment is None:
        return ""
    if hasattr(moment, "astimezone") and getattr(moment, "tzinfo", None) is not None:
        moment = moment.astimezone(UTC)
    return moment.isoformat()


def _centre(obj) -> list[float] | None:
    if obj.centre_x_mm is None:
        return None
    return [obj.centre_x_mm, obj.centre_y_mm, obj.centre_z_mm]


def pseudonym(user) -> str:
    if user is None:
        return ""
    profile = getattr(user, "profile", None)
    return profile.pseudonym if profile is not None else f"U{user.pk:04d}"


def _table(model) -> str:
    return model._meta.db_table


def _series(case: Case, rows: Rows) -> dict:
    series, study = case.series, case.series.study
    instances = list(Instance.objects.filter(series=series).order_by("slice_index", "frame", "id"))
    rows[_table(type(series))].add(series.pk)
    rows[_table(type(study))].add(study.pk)
    rows[_table(Instance)].update(i.pk for i in instances)
    return {
        "id": series.pk,
        "series_uid": series.series_uid,
        "study_uid": study.study_uid,
        "patient_pseudo_id": study.patient_pseudo_id,
        "study_year": study.study_date.year if study.study_date else None,
        "patient_age_years": study.patient_age_years,
        "patient_sex": study.patient_sex,
        "modality": series.modality,
        "body_part": series.body_part,
        "manufacturer": series.manufacturer,
        "model": series.model_name,
        "kernel": series.kernel,
        "kvp": series.kvp,
        "contrast": series.contrast,
        "slice_thickness_mm": series.slice_thickness_mm,
        "slice_spacing_mm": series.slice_spacing_mm,
        "pixel_spacing_mm": series.pixel_spacing_mm,
        "orientation": series.orientation,
        "frame_of_reference_uid": series.frame_of_reference_uid,
        "rows": series.rows,
        "columns": series.columns,
        "num_instances": series.num_instances,
        "instances": [
            {
                "id": i.pk,
                "sop_instance_uid": i.sop_instance_uid,
                "sop_class_uid": i.sop_class_uid,
                "slice_index": i.slice_index,
                "frame": i.frame,
                "position": i.position,
                "sha256": i.sha256,
                "file": i.file,
                "size_bytes": i.size_bytes,
                # the file format the image arrived in (JPEG/PNG/TIFF/DICOM, "" when
                # imported before it was recorded; export/fundus.py then falls back to
                # the DICOM) and its laterality (R/L/B/U or ""), so the export and the
                # DR evaluation need not read the DICOM headers again; its view
                # position likewise (None: imported before it was recorded)
                "source_format": i.source_format,
                "laterality": i.laterality,
                "view_position": i.view_position,
            }
            for i in instances
        ],
        "image_sha256": hashlib.sha256("".join(i.sha256 for i in instances).encode()).hexdigest(),
    }


def _reads(case: Case, rows: Rows) -> list[dict]:
    tasks = list(
        ReadingTask.objects.operational()
        .filter(case=case)
        .select_related("reader__profile")
        .order_by("phase", "id")
    )
    findings = defaultdict(list)
    by_pk: dict[int, Finding] = {}
    for f in (
        Finding.objects.filter(task__in=tasks)
        .select_related("derived_from", "proposal__model_version")
        .order_by("id")
    ):
        findings[f.task_id].append(f)
        by_pk[f.pk] = f
    labels = {lab.task_id: lab for lab in CaseLabel.objects.filter(task__in=tasks)}
    rows[_table(ReadingTask)].update(t.pk for t in tasks)
    rows[_table(Finding)].update(f.pk for fs in findings.values() for f in fs)
    rows[_table(CaseLabel)].update(lab.pk for lab in labels.values())
    out = []
    for t in tasks:
        label = labels.get(t.pk)
        out.append(
            {
                "id": t.pk,
                "reader_id": t.reader_id,
                "reader_pseudo_id": pseudonym(t.reader),
                "phase": t.phase,
                "state": t.state,
                "assigned_at": iso(t.assigned_at),
                "started_at": iso(t.started_at),
                "submitted_at": iso(t.submitted_at),
                "active_seconds": t.active_seconds,
                "case_labels": label.values if label else {},
                "derived_labels": label.derived if label else {},
                "findings": [
                    {
                        "id": f.pk,
                        "uid": str(f.uid),
                        "finding_type": f.finding_type,
                        "geometry": f.geometry,
                        "centre_mm": _centre(f),
                        "attributes": f.attributes,
                        "measurements": f.measurements,
                        "source": f.source,
                        "model": _origin_model(f, by_pk),
                        "proposal": f.proposal_id,
                        "derived_from": str(f.derived_from.uid) if f.derived_from else "",
                        "created_at": iso(f.created_at),
                        "updated_at": iso(f.updated_at),
                    }
                    for f in findings[t.pk]
                ],
            }
        )
    return out


def model_ref(row: AssistModelVersion) -> dict:
    return {"name": row.name, "version": row.version, "weights_sha256": row.weights_sha256}


def _origin_model(finding: Finding, by_pk: dict[int, Finding]) -> dict | None:
    """The assist model behind a model-sourced finding: its proposal's model version,
    else the name and version recorded on it, else (a review-phase copy, which keeps
    the source but not the proposal) the blind-phase finding it revises."""
    if finding.source == Finding.Source.MANUAL:
        return None
    seen: set[int] = set()
    f: Finding | None = finding
    while f is not None and f.pk not in seen:
        seen.add(f.pk)
        if f.proposal_id is not None:
            return model_ref(f.proposal.model_version)
        if f.model_name:
            return {"name": f.model_name, "version": f.model_version, "weights_sha256": ""}
        f = by_pk.get(f.derived_from_id) or (f.derived_from if f.derived_from_id else None)
    return {"name": "", "version": "", "weights_sha256": ""}


def _assist(case: Case, tasks: list[int]) -> dict:
    """Model assistance on the case at freeze: arm, proposals per model version,
    and what each read did with the proposals it acted on."""
    proposals = (
        Proposal.objects.filter(case=case)
        .values(
            "model_version__name",
            "model_version__version",
            "model_version__weights_sha256",
            "model_version__task",
        )
        .annotate(n=Count("id"))
        .order_by("model_version__name", "model_version__version", "model_version__weights_sha256")
    )
    dispositions = (
        ProposalDisposition.objects.filter(task_id__in=tasks)
        .select_related("proposal__model_version", "finding")
        .order_by("task_id", "id")
    )
    return {
        "unassisted": case.project.protocol.case_unassisted(case.pk),
        "proposals": [
            {
                "model": {
                    "name": p["model_version__name"],
                    "version": p["model_version__version"],
                    "weights_sha256": p["model_version__weights_sha256"],
                },
                "task": p["model_version__task"],
                "n": p["n"],
            }
            for p in proposals
        ],
        "dispositions": [
            {
                "read_id": d.task_id,
                "proposal": d.proposal_id,
                "model": model_ref(d.proposal.model_version),
                "action": d.action,
                "finding_uid": str(d.finding.uid) if d.finding else "",
                "dice": d.dice,
                "hd95_mm": d.hd95_mm,
                "decided_at": iso(d.decided_at),
            }
            for d in dispositions
        ],
    }


def _settlements(case: Case, rows: Rows) -> list[dict]:
    settlements = list(Settlement.objects.filter(case=case).order_by("round"))
    clusters = defaultdict(list)
    through = Cluster.findings.through
    members = defaultdict(list)
    for row in through.objects.filter(cluster__case=case).select_related("finding"):
        members[row.cluster_id].append(str(row.finding.uid))
        rows[_table(through)].add(row.pk)
    for c in Cluster.objects.filter(case=case).order_by("settlement_id", "number"):
        clusters[c.settlement_id].append(c)
        rows[_table(Cluster)].add(c.pk)
    rows[_table(Settlement)].update(s.pk for s in settlements)
    return [
        {
            "id": s.pk,
            "round": s.round,
            "phase": s.phase,
            "protocol": s.protocol,
            "label_disputes": s.label_disputes,
            "label_consensus": s.label_consensus,
            "outcome": s.outcome,
            "created_at": iso(s.created_at),
            "clusters": [
                {
                    "id": c.pk,
                    "number": c.number,
                    "ref_key": str(c.ref_key),
                    "finding_type": c.finding_type,
                    "readers": c.readers,
                    "centre_mm": _centre(c),
                    "match_rule": c.match_rule,
                    "match_threshold": c.match_threshold,
                    "threshold_used": c.threshold_used,
                    "tightened_on": c.tightened_on,
                    "verdict": c.verdict,
                    "reasons": c.reasons,
                    "diameter_mm": c.diameter_mm,
                    "findings": sorted(members[c.pk]),
                }
                for c in clusters[s.pk]
            ],
        }
        for s in settlements
    ]


def _arbitration(case: Case, rows: Rows) -> list[dict]:
    tasks = list(
        ArbitrationTask.objects.filter(case=case)
        .select_related("arbitrator__profile")
        .order_by("round", "role", "id")
    )
    rows[_table(ArbitrationTask)].update(t.pk for t in tasks)
    return [
        {
            "id": t.pk,
            "arbitrator_id": t.arbitrator_id,
            "arbitrator_pseudo_id": pseudonym(t.arbitrator),
            "role": t.role,
            "round": t.round,
            "state": t.state,
            "items": t.items,
            "decisions": t.decisions,
            "assigned_at": iso(t.assigned_at),
            "signed_at": iso(t.signed_at),
            "signature_hash": t.signature_hash,
        }
        for t in tasks
    ]


def _reference(case: Case, rows: Rows) -> dict:
    refs = list(
        ReferenceFinding.objects.filter(case=case)
        .select_related("decided_by__profile")
        .order_by("ref_key", "revision")
    )
    through = ReferenceFinding.supporting_findings.through
    support = defaultdict(list)
    for row in through.objects.filter(referencefinding__case=case).select_related(
        "finding__task__reader__profile"
    ):
        support[row.referencefinding_id].append(
            {
                "uid": str(row.finding.uid),
                "read_id": row.finding.task_id,
                "reader_pseudo_id": pseudonym(row.finding.task.reader),
            }
        )
        rows[_table(through)].add(row.pk)
    labels = list(
        ReferenceLabels.objects.filter(case=case)
        .select_related("decided_by__profile")
        .order_by("revision")
    )
    rows[_table(ReferenceFinding)].update(r.pk for r in refs)
    rows[_table(ReferenceLabels)].update(lab.pk for lab in labels)
    return {
        "findings": [
            {
                "id": r.pk,
                "ref_key": str(r.ref_key),
                "revision": r.revision,
                "current": r.is_current,
                "supersedes": r.supersedes_id,
                "status": r.status,
                "finding_type": r.finding_type,
                "geometry": r.geometry,
                "centre_mm": _centre(r),
                "diameter_mm": r.diameter_mm,
                "attributes": r.attributes,
                "measurements": (
                    r.measurements if r.measurements is not None else _measure(case, r.geometry)
                ),
                "decision": r.decision,
                "supporting": sorted(support[r.pk], key=lambda s: s["uid"]),
                "arbitration_task": r.arbitration_task_id,
                "decided_by_pseudo_id": pseudonym(r.decided_by),
                "decided_at": iso(r.decided_at),
                "reason_code": r.reason_code,
                "reason_text": r.reason_text,
                "match_rule": r.match_rule,
                "match_threshold": r.match_threshold,
            }
            for r in refs
        ],
        "labels": [
            {
                "id": lab.pk,
                "revision": lab.revision,
                "current": lab.is_current,
                "supersedes": lab.supersedes_id,
                "values": lab.values,
                "derived": lab.derived,
                "provenance": lab.provenance,
                "decision": lab.decision,
                "arbitration_task": lab.arbitration_task_id,
                "decided_by_pseudo_id": pseudonym(lab.decided_by),
                "decided_at": iso(lab.decided_at),
            }
            for lab in labels
        ],
    }


def _measure(case: Case, geometry) -> dict | None:
    """A reference finding's measurements from its geometry, as a reader's finding
    gets them on save (reading.measurements); None for marks without area. Only
    for revisions written before they kept their own (ReferenceFinding.measurements,
    measured when written): those are copied without reading pixels."""
    if not isinstance(geometry, dict):
        return None
    return measure_finding(case.series, geometry)


def _qc(case: Case, rows: Rows) -> list[dict]:
    reports = list(QcReport.objects.filter(case=case).order_by("created_at", "id"))
    rows[_table(QcReport)].update(r.pk for r in reports)
    return [
        {
            "id": r.pk,
            "status": r.status,
            "profile_version": r.profile_version,
            "profile": r.profile,
            "results": r.results,
            "created_at": iso(r.created_at),
        }
        for r in reports
    ]


def current_reference(snapshot: dict) -> dict:
    """The part of a case snapshot that is its reference standard at freeze:
    {ref_key: revision dict} of the current findings, and the current labels."""
    findings = {
        f["ref_key"]: f for f in snapshot.get("reference", {}).get("findings", []) if f["current"]
    }
    labels = next(
        (lab for lab in snapshot.get("reference", {}).get("labels", []) if lab["current"]), None
    )
    return {"findings": findings, "labels": labels}


def reference_digest(snapshot: dict) -> str:
    ref = current_reference(snapshot)
    return sha256_of(
        {
            "findings": sorted((k, f["revision"], f["status"]) for k, f in ref["findings"].items()),
            "labels": ref["labels"]["revision"] if ref["labels"] else None,
        }
    )


def case_label(snapshot: dict) -> str:
    """Patient-level label: positive when the reference holds an included finding."""
    findings = current_reference(snapshot)["findings"].values()
    return "positive" if any(f["status"] == "included" for f in findings) else "negative"


def case_snapshot(case: Case) -> tuple[dict, Rows]:
    rows: Rows = defaultdict(set)
    case = Case.objects.select_related("site", "series__study", "project__protocol").get(pk=case.pk)
    rows[_table(Case)].add(case.pk)
    reads = _reads(case, rows)
    snapshot = {
        "case": {
            "id": case.pk,
            "code": case.code,
            "state": case.state,
            "qc_status": case.qc_status,
            "site_code": case.site.code if case.site else "",
            "site_type": case.site.site_type if case.site else "",
            "created_at": iso(case.created_at),
        },
        "series": _series(case, rows),
        "reads": reads,
        "settlements": _settlements(case, rows),
        "arbitration": _arbitration(case, rows),
        "reference": _reference(case, rows),
        "qc_reports": _qc(case, rows),
        "assist": _assist(case, [r["id"] for r in reads]),
    }
    return snapshot, rows


def _protocol(project: Project) -> dict:
    p = project.protocol
    return {
        "readers_per_case": p.readers_per_case,
        "phases": p.phases,
        "review_phase": p.review_phase,
        "blind": p.blind,
        "exclude_own_site": p.exclude_own_site,
        "match_rule": p.match_rule,
        "match_threshold": p.match_threshold,
        "auto_accept_min_readers": p.auto_accept_min_readers,
        "auto_accept_same_type": p.auto_accept_same_type,
        "auto_accept_ordinal_tolerance": p.auto_accept_ordinal_tolerance,
        "drop_below_readers": p.drop_below_readers,
        "size_tolerance_mm": p.size_tolerance_mm,
        "grade_rule": p.grade_rule,
        "grade_difference": p.grade_difference,
        "arbitration_mode": p.arbitration_mode,
        "consensus_method": p.consensus_method,
        "prelabel_visibility": p.prelabel_visibility,
        "prelabel_min_confidence": p.prelabel_min_confidence,
        "unassisted_fraction": p.unassisted_fraction,
        "unassisted_seed": p.unassisted_seed,
        "reading_days": p.reading_days,
        "updated_at": iso(p.updated_at),
    }


def _roster(project: Project, case_snapshots: list[dict]) -> list[dict]:
    from django.contrib.auth import get_user_model

    roles: dict[int, set[str]] = defaultdict(set)
    qualified: dict[int, bool] = {}
    for m in Membership.objects.filter(project=project, role__in=("reader", "arbitrator")):
        roles[m.user_id].add(m.role)
        if m.role == "reader":
            qualified[m.user_id] = m.qualified
    for snap in case_snapshots:
        for read in snap["reads"]:
            roles[read["reader_id"]].add("reader")
        for task in snap["arbitration"]:
            roles[task["arbitrator_id"]].add("arbitrator")
    users = get_user_model().objects.filter(pk__in=roles).select_related("profile__site")
    out = []
    for user in users:
        profile = getattr(user, "profile", None)
        site = profile.site if profile else None
        for role in sorted(roles[user.pk]):
            out.append(
                {
                    "user_id": user.pk,
                    "pseudo_id": pseudonym(user),
                    "role": role,
                    "qualified": qualified.get(user.pk) if role == "reader" else None,
                    "specialty": profile.specialty if profile else "",
                    "title": profile.title if profile else "",
                    "years_experience": profile.years_experience if profile else None,
                    "experience_band": profile.experience_band if profile else "unknown",
                    "site_code": site.code if site else "",
                    "site_type": site.site_type if site else "",
                    "training_date": iso(profile.training_date) if profile else "",
                }
            )
    return sorted(out, key=lambda r: (r["pseudo_id"], r["role"]))


def _qualification(project: Project, rows: Rows) -> tuple[list[dict], list[dict]]:
    tests = list(QualificationTest.objects.filter(project=project).order_by("id"))
    attempts = list(
        QualificationAttempt.objects.filter(test__project=project, submitted_at__isnull=False)
        .select_related("reader__profile")
        .order_by("test_id", "reader_id", "number")
    )
    rows[_table(QualificationAttempt)].update(a.pk for a in attempts)
    return (
        [
            {
                "id": t.pk,
                "name": t.name,
                "cases": t.cases.count(),
                "min_sensitivity": t.min_sensitivity,
                "max_fp_per_case": t.max_fp_per_case,
                "min_kappa": t.min_kappa,
                "max_attempts": t.max_attempts,
                "active": t.active,
            }
            for t in tests
        ],
        [
            {
                "id": a.pk,
                "test_id": a.test_id,
                "reader_id": a.reader_id,
                "reader_pseudo_id": pseudonym(a.reader),
                "number": a.number,
                "started_at": iso(a.started_at),
                "submitted_at": iso(a.submitted_at),
                "sensitivity": a.sensitivity,
                "fp_per_case": a.fp_per_case,
                "kappa": a.kappa,
                "passed": a.passed,
            }
            for a in attempts
        ],
    )


def project_snapshot(project: Project, case_snapshots: list[dict]) -> tuple[dict, Rows]:
    rows: Rows = defaultdict(set)
    schema = project.label_schema
    rows[_table(type(schema))].add(schema.pk)
    tests, attempts = _qualification(project, rows)
    snapshot = {
        "project": {
            "id": project.pk,
            "slug": project.slug,
            "name": project.name,
            "description": project.description,
            "task_type": project.task_type,
            "modality": project.modality,
            "body_part": project.body_part,
        },
        "protocol": _protocol(project),
        "schema": {
            "id": schema.pk,
            "key": schema.key,
            "version": schema.version,
            "name": schema.name,
            "definition": schema.definition,
        },
        "qc_profile": {"version": project.qc_profile_version, "profile": project.qc_profile},
        "deid_profile": {
            "standard": "DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile",
            "clean_descriptors": project.deid_clean_descriptors,
            "retain_longitudinal_modified_dates": project.deid_shift_dates,
        },
        "roster": _roster(project, case_snapshots),
        "qualification_tests": tests,
        "qualification": attempts,
        "tool": {"name": "RefSet", "version": __version__},
    }
    return snapshot, rows
