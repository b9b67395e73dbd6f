"""A frozen version as the export's plain data (export/model.py `PackageInput`).

Everything comes from the version's snapshots (DatasetVersion.snapshot and each
DatasetCase.snapshot), never from the live rows: exporting a version gives the
same input today and in a year, whatever happened to the project since. Case
ids are the case codes; people appear only by pseudonym; times are the ISO
strings of the snapshot. Retired cases are listed (flagged, with their reason)
but carry no reads or reference. The sequestered test split is included: the
export job removes it for users who may not see it.

Instance paths are local files when the storage has them (FileSystemStorage),
otherwise imaging.storage.StoredPath objects: path-likes that fetch the stored
instance into this node's cache when the export opens them, so a worker on
another host than the one that imported the images reads them from the object
store (no shared disk).

Model pre-annotation (export/provenance.py states the rules): a reader's
finding keeps its snapshot origin and model; a reference finding is
model-derived when one of its supporting reader findings came from a model,
and lists those findings' distinct models. `PreAnnotation` sums the cases'
`assist` snapshots (proposals per model version, dispositions, the
no-assistance arm) over the version's non-retired cases; a version frozen
before cases recorded `assist` states the arm as unknown.

Measurements: a reader's finding carries the measurements it had at freeze, a
reference finding those measured from its geometry at freeze (both in the
snapshot); `measured` turns them into the export's mm / mm³ / HU fields. A
version frozen before measurements existed has none in its snapshot: its
export gives the axes the reader typed (attributes), as it did before.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from annotation_server.datasets.models import DatasetVersion
from annotation_server.datasets.snapshot import current_reference, iso
from annotation_server.imaging import storage
from annotation_server.reading import derived as derived_fields
from export.model import (
    ArbitrationEntry,
    AssistModelRef,
    CaseRecord,
    Changelog,
    FindingRecord,
    InstanceRecord,
    ModelProposals,
    PackageInput,
    PreAnnotation,
    QcRecord,
    QualificationRecord,
    ReadRecord,
    ReferenceLabelsRecord,
    ReferenceRecord,
    RosterEntry,
    SeriesRecord,
)

SOURCES = {"manual": "manual", "model_accepted": "model-accepted", "model_edited": "model-edited"}
DECISIONS = {
    "auto_consensus": "auto-consensus",
    "arbitrated": "arbitrated",
    "imported": "imported",
}


def _path(key: str):
    return storage.readable_path(key)


def _tuple(values) -> tuple | None:
    return tuple(values) if values else None


def age_band(age: int | None) -> str:
    if age is None:
        return ""
    low = min(age // 10 * 10, 80)
    return f"{low}+" if low == 80 else f"{low}-{low + 9}"


def _series(s: dict) -> SeriesRecord:
    return SeriesRecord(
        series_uid=s["series_uid"],
        study_uid=s["study_uid"],
        modality=s["modality"],
        frame_of_reference_uid=s.get("frame_of_reference_uid") or "",
        manufacturer=s.get("manufacturer") or "",
        model=s.get("model") or "",
        kvp=s.get("kvp"),
        kernel=s.get("kernel") or "",
        slice_thickness_mm=s.get("slice_thickness_mm"),
        pixel_spacing_mm=_tuple(s.get("pixel_spacing_mm")),
        orientation=_tuple(s.get("orientation")),
        rows=s.get("rows"),
        columns=s.get("columns"),
        contrast=s.get("contrast") or "",
        body_part=s.get("body_part") or "",
        instances=tuple(
            InstanceRecord(
                sop_instance_uid=i["sop_instance_uid"],
                sop_class_uid=i["sop_class_uid"],
                slice_index=i["slice_index"],
                path=_path(i["file"]),
                sha256=i["sha256"],
                position=_tuple(i.get("position")),
                source_format=i.get("source_format") or "",
                laterality=i.get("laterality"),  # None: frozen before it was recorded
            )
            for i in s["instances"]
        ),
    )


def _model(f: dict) -> AssistModelRef | None:
    """The assist model of a snapshot finding (None when manual)."""
    if f.get("source", "manual") == "manual":
        return None
    m = f.get("model") or {}
    return AssistModelRef(m.get("name", ""), m.get("version", ""), m.get("weights_sha256", ""))


def _ref_origin(supporting: list[dict], findings: dict[str, dict]) -> dict[str, Any]:
    """A reference finding's origin from the reader findings that support it."""
    models = [_model(findings.get(s["uid"], {})) for s in supporting]
    behind = sorted({m for m in models if m is not None})
    return {
        "origin": "model-derived" if behind else "manual",
        "models": tuple(behind),
        "model_marks": sum(m is not None for m in models),
    }


def _pre_annotation(snaps: list[dict], codes: list[str]) -> PreAnnotation:
    proposals: Counter = Counter()
    cases: Counter = Counter()
    tasks: dict[AssistModelRef, str] = {}
    actions: dict[AssistModelRef, Counter] = {}
    unassisted: list[str] | None = []
    for code, snap in zip(codes, snaps, strict=True):
        assist = snap.get("assist")
        if assist is None:
            unassisted = None
            continue
        if unassisted is not None and assist["unassisted"]:
            unassisted.append(code)
        for p in assist["proposals"]:
            model = AssistModelRef(**p["model"])
            proposals[model] += p["n"]
            cases[model] += 1
            tasks[model] = p["task"]
        for d in assist["dispositions"]:
            actions.setdefault(AssistModelRef(**d["model"]), Counter())[d["action"]] += 1
    return PreAnnotation(
        models=tuple(
            ModelProposals(
                model=m,
                task=tasks.get(m, ""),
                proposals=proposals[m],
                cases=cases[m],
                accepted=actions.get(m, Counter())["accepted"],
                edited=actions.get(m, Counter())["edited"],
                rejected=actions.get(m, Counter())["rejected"],
            )
            for m in sorted(set(proposals) | set(actions))
        ),
        unassisted_cases=None if unassisted is None else tuple(unassisted),
    )


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def measured(measurements: dict | None, attributes: dict | None = None) -> dict[str, Any]:
    """A snapshot's measurements (qc.measurements JSON) as the export's fields,
    each in the unit its name says or None (export/model.py states the rules).

    Lengths only when the measurement was in mm, volume only in mm³, HU only on
    CT. A finding without measured axes (saved before measurements existed)
    falls back to the schema attributes long_axis_mm / short_axis_mm /
    volume_mm3 the reader typed, with axes_from "attribute"."""
    m = measurements or {}
    units = m.get("units") or {}
    in_mm = units.get("length") == "mm"
    out: dict[str, Any] = {
        "long_axis_mm": _number(m.get("long_axis")) if in_mm else None,
        "short_axis_mm": _number(m.get("short_axis")) if in_mm else None,
        "mean_diameter_mm": _number(m.get("mean_diameter")) if in_mm else None,
        "volume_mm3": _number(m.get("volume")) if units.get("volume") == "mm³" else None,
        "mean_hu": _number(m.get("hu_mean")) if units.get("hu") == "HU" else None,
        "max_hu": _number(m.get("hu_max")) if units.get("hu") == "HU" else None,
        "axes_from": str(m.get("axes_from") or "") if in_mm else "",
    }
    attrs = attributes or {}
    if out["long_axis_mm"] is None and _number(attrs.get("long_axis_mm")) is not None:
        long, short = _number(attrs.get("long_axis_mm")), _number(attrs.get("short_axis_mm"))
        out.update(long_axis_mm=long, short_axis_mm=short, axes_from="attribute")
        out["mean_diameter_mm"] = round((long + short) / 2, 2) if short is not None else None
    if out["volume_mm3"] is None:
        out["volume_mm3"] = _number(attrs.get("volume_mm3"))
    if out["long_axis_mm"] is None:
        out["axes_from"] = ""
    return out


def _finding(f: dict) -> FindingRecord:
    attrs = f.get("attributes") or {}
    model = _model(f)
    return FindingRecord(
        finding_id=f["uid"],
        finding_type=f["finding_type"],
        geometry=f["geometry"],
        centre_mm=_tuple(f.get("centre_mm")),
        **measured(f.get("measurements"), attrs),
        attributes=attrs,
        confidence=attrs.get("confidence"),
        source=SOURCES.get(f.get("source", "manual"), f.get("source", "manual")),
        model_name=model.name if model else "",
        model_version=model.version if model else "",
        model_sha256=model.weights_sha256 if model else "",
    )


def _arbitration(code: str, snap: dict) -> list[ArbitrationEntry]:
    clusters = {
        str(c["id"]): c for settlement in snap["settlements"] for c in settlement["clusters"]
    }
    readers_of = {f["uid"]: r["reader_pseudo_id"] for r in snap["reads"] for f in r["findings"]}
    out = []
    for task in snap["arbitration"]:
        if task["state"] != "signed":
            continue
        decisions = task.get("decisions") or {}
        for cluster_id, d in sorted((decisions.get("clusters") or {}).items()):
            cluster = clusters.get(str(cluster_id), {})
            triggers = sorted({r.get("code", "") for r in cluster.get("reasons", [])}) or [""]
            out.append(
                ArbitrationEntry(
                    dispute_id=f"{task['id']}-{cluster_id}",
                    case_id=code,
                    cluster_id=str(cluster.get("number", cluster_id)),
                    trigger="+".join(t for t in triggers if t) or "existence",
                    reader_votes={
                        readers_of.get(uid, "?"): "marked" for uid in cluster.get("findings", [])
                    },
                    arbitrator_pseudo_id=task["arbitrator_pseudo_id"],
                    information_shown=(
                        "other arbitrators' decisions hidden (blind)"
                        if task["role"] in ("first", "second")
                        else "all reads side by side, readers anonymised"
                    ),
                    decision=d.get("action", ""),
                    reason_code=d.get("reason_code", ""),
                    reason_text=d.get("reason_text", ""),
                    decided_at=task["signed_at"],
                )
            )
        for key, d in sorted((decisions.get("labels") or {}).items()):
            out.append(
                ArbitrationEntry(
                    dispute_id=f"{task['id']}-{key}",
                    case_id=code,
                    cluster_id="",
                    trigger="case label",
                    reader_votes={},
                    arbitrator_pseudo_id=task["arbitrator_pseudo_id"],
                    information_shown="all reads side by side, readers anonymised",
                    decision=str(d.get("value", d.get("action", ""))),
                    reason_code=d.get("reason_code", ""),
                    reason_text=d.get("reason_text", ""),
                    decided_at=task["signed_at"],
                )
            )
    return out


def build_package_input(version: DatasetVersion) -> PackageInput:
    if not version.frozen:
        raise ValueError(f"{version} is not frozen")
    project_snap: dict[str, Any] = version.snapshot
    project = project_snap["project"]
    cases, reads, reference, arbitration, qc = [], [], [], [], []
    case_labels: dict[str, dict[str, Any]] = {}
    reference_labels: dict[str, ReferenceLabelsRecord] = {}
    definition = project_snap["schema"].get("definition") or {}
    sites: dict[str, dict[str, Any]] = {}
    assisted_snaps: list[dict] = []
    assisted_codes: list[str] = []
    for dc in version.cases.order_by("case_code"):
        snap = dc.snapshot
        if not snap:
            continue
        code, s = dc.case_code, snap["series"]
        current = current_reference(snap)
        series = _series(s)
        cases.append(
            CaseRecord(
                case_id=code,
                patient_pseudo_id=s.get("patient_pseudo_id") or dc.patient_pseudo_id,
                site_id=snap["case"].get("site_code") or "",
                series=(series,),
                split=dc.split,
                acquisition_year=s.get("study_year"),
                age_band=age_band(s.get("patient_age_years")),
                sex=s.get("patient_sex") or "",
                case_label=dc.case_label,
                reference_standard_type=(
                    "imported"
                    if any(f["decision"] == "imported" for f in current["findings"].values())
                    else "expert panel"
                ),
                qc_status=snap["case"].get("qc_status", ""),
                retired=dc.retired,
                retired_reason=dc.retired_reason,
            )
        )
        site = sites.setdefault(
            snap["case"].get("site_code") or "",
            {"site_type": snap["case"].get("site_type", ""), "devices": []},
        )
        device = f"{s.get('manufacturer') or ''} {s.get('model') or ''}".strip()
        if device and device not in site["devices"]:
            site["devices"].append(device)
            site["devices"].sort()
        if dc.retired:
            continue
        assisted_snaps.append(snap)
        assisted_codes.append(code)
        reader_findings = {f["uid"]: f for r in snap["reads"] for f in r["findings"]}
        for r in snap["reads"]:
            reads.append(
                ReadRecord(
                    read_id=str(r["id"]),
                    case_id=code,
                    series_uid=s["series_uid"],
                    reader_pseudo_id=r["reader_pseudo_id"],
                    phase=r["phase"],
                    started_at=r["started_at"],
                    submitted_at=r["submitted_at"],
                    findings=tuple(_finding(f) for f in r["findings"]),
                    case_labels=r["case_labels"],
                    tool_version=f"RefSet {project_snap['tool']['version']}",
                    derived=_derived(
                        definition,
                        r.get("derived_labels"),
                        r["case_labels"],
                        [(f["finding_type"], f["geometry"]) for f in r["findings"]],
                    ),
                )
            )
        for f in sorted(current["findings"].values(), key=lambda f: f["ref_key"]):
            if f["status"] == "rejected":
                continue
            reference.append(
                ReferenceRecord(
                    ref_finding_id=f"{f['ref_key']}r{f['revision']}",
                    case_id=code,
                    series_uid=s["series_uid"],
                    finding_type=f["finding_type"],
                    centre_mm=_tuple(f.get("centre_mm")),
                    diameter_mm=f.get("diameter_mm"),
                    geometry=f.get("geometry"),
                    attributes=f.get("attributes") or {},
                    reader_ids=tuple(sorted({x["reader_pseudo_id"] for x in f["supporting"]})),
                    decision=DECISIONS.get(f["decision"], f["decision"]),
                    arbitration_id=str(f["arbitration_task"] or ""),
                    revision=f["revision"],
                    excluded=f["status"] == "excluded",
                    exclusion_reason=(f.get("reason_code") or "")
                    if f["status"] == "excluded"
                    else "",
                    **_ref_origin(f["supporting"], reader_findings),
                    **measured(f.get("measurements"), f.get("attributes")),
                )
            )
        if current["labels"]:
            labels = current["labels"]
            case_labels[code] = labels["values"]
            included = [
                (f["finding_type"], f.get("geometry") or {})
                for f in sorted(current["findings"].values(), key=lambda f: f["ref_key"])
                if f["status"] == "included"
            ]
            reference_labels[code] = ReferenceLabelsRecord(
                case_id=code,
                revision=labels["revision"],
                decision=DECISIONS.get(labels["decision"], labels["decision"]),
                derived=_derived(definition, labels.get("derived"), labels["values"], included),
                arbitrated={
                    key: str(p.get("task") or labels.get("arbitration_task") or "")
                    for key, p in sorted((labels.get("provenance") or {}).items())
                    if isinstance(p, dict) and p.get("decision") == "arbitrated"
                },
            )
        arbitration += _arbitration(code, snap)
        report = snap["qc_reports"][-1] if snap["qc_reports"] else None
        for result in (report or {}).get("results", []):
            qc.append(
                QcRecord(
                    case_id=code,
                    series_uid=s["series_uid"],
                    rule=str(result.get("rule", "")),
                    status=str(result.get("status", "")),
                    value="" if result.get("value") is None else str(result.get("value")),
                    message=str(result.get("message_en", result.get("message", "")) or ""),
                )
            )
    tests = {t["id"]: t for t in project_snap.get("qualification_tests", [])}
    qualification = tuple(
        QualificationRecord(
            pseudo_id=a["reader_pseudo_id"],
            test_set=tests.get(a["test_id"], {}).get("name", str(a["test_id"])),
            date=(a["submitted_at"] or "")[:10],
            sensitivity=a["sensitivity"],
            fp_per_case=a["fp_per_case"],
            kappa=a["kappa"],
            threshold=_threshold(tests.get(a["test_id"], {})),
            passed=bool(a["passed"]),
            attempt=a["number"],
        )
        for a in project_snap.get("qualification", [])
    )
    log = version.changelog or {}
    changelog = Changelog(
        parent_version=log.get("parent", ""),
        cases_added=tuple(log.get("cases_added", [])),
        cases_retired=tuple(tuple(x) for x in log.get("cases_retired", [])),
        reference_changes=tuple(
            (
                f"{c['ref_key']}r{c['new_revision'] or c['old_revision']}",
                c["change"],
                c["arbitration_id"],
                f"{c['case']}: {c['detail']}",
            )
            for c in log.get("reference_changes", [])
        ),
    )
    return PackageInput(
        dataset_id=project["slug"],
        version=version.version,
        title=version.title or project["name"],
        description=project.get("description", ""),
        frozen_at=iso(version.frozen_at),
        modality=project["modality"],
        body_part=project.get("body_part", ""),
        tool_version=f"RefSet {project_snap['tool']['version']}",
        protocol=project_snap["protocol"],
        schema=project_snap["schema"],
        deid_profile=project_snap["deid_profile"],
        qc_profile=project_snap["qc_profile"],
        cases=tuple(cases),
        reads=tuple(reads),
        reference=tuple(reference),
        case_labels=case_labels,
        reference_labels=reference_labels,
        arbitration_log=tuple(arbitration),
        roster=tuple(
            RosterEntry(
                pseudo_id=r["pseudo_id"],
                role=r["role"],
                specialty=r.get("specialty", ""),
                title_band=r.get("title", ""),
                experience_band=r.get("experience_band", ""),
                site_type=r.get("site_type", ""),
                training_date=r.get("training_date", ""),
            )
            for r in project_snap.get("roster", [])
        ),
        qualification=qualification,
        qc=tuple(qc),
        changelog=changelog,
        parent_version=version.parent.version if version.parent else "",
        sites=dict(sorted(sites.items())),
        pre_annotation=_pre_annotation(assisted_snaps, assisted_codes),
    )


def _derived(definition: dict, stored: dict | None, values: dict, findings) -> dict[str, Any]:
    """The derived fields (referable DR, vertical CDR) stored at freeze; a snapshot
    taken before they were stored, or answers saved without them, get them computed
    from the same answers and findings by the same rules (reading.derived)."""
    if stored:
        return dict(stored)
    if not definition.get("derived"):
        return {}
    return derived_fields.compute(definition, values or {}, findings)


def _threshold(test: dict) -> str:
    parts = []
    if test.get("min_sensitivity") is not None:
        parts.append(f"sensitivity>={test['min_sensitivity']}")
    if test.get("max_fp_per_case") is not None:
        parts.append(f"fp_per_case<={test['max_fp_per_case']}")
    if test.get("min_kappa") is not None:
        parts.append(f"kappa>={test['min_kappa']}")
    return "; ".join(parts)
