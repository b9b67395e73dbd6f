"""Running the image-QC rules (qc/, framework-free) on a case's series and gating
the case on the result: a failing series does not become readable unless a
manager overrides it with a reason (override_qc). The gate itself is the case
state machine's (projects.services.transition)."""

from __future__ import annotations

import io

import pydicom
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

import qc
from annotation_server.audit import services as audit
from annotation_server.imaging import storage
from annotation_server.projects.models import Case, Project
from annotation_server.projects.services import TransitionError
from annotation_server.quality.models import CaseFlag, QcReport
from qc.result import reader_warnings as _reader_warnings


def profile_for(project) -> qc.Profile:
    modality = project.modalities[0] if project.modalities else ""
    if not project.qc_profile:
        return qc.Profile.default_for(modality, project.body_part)
    data = dict(project.qc_profile)
    data.setdefault("base", modality)
    data.setdefault("region", project.body_part or None)  # body-part-aware defaults
    try:
        return qc.Profile.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"The project's QC profile is invalid: {exc}") from None


def _series_input(case: Case) -> qc.SeriesInput:
    keys = list(
        case.series.instances.order_by("slice_index").values_list("file", flat=True).distinct()
    )
    datasets = []
    for key in dict.fromkeys(keys):  # a multi-frame file appears once
        with storage.open_instance(key) as fh:
            datasets.append(pydicom.dcmread(io.BytesIO(fh.read())))
    return qc.SeriesInput.from_datasets(datasets, source=case.code)


STATUS = {
    "pass": Case.QcStatus.PASS,
    "n/a": Case.QcStatus.PASS,
    "warn": Case.QcStatus.WARN,
    "fail": Case.QcStatus.FAIL,
}


@transaction.atomic
def check_case(case: Case, *, by=None) -> QcReport:
    """Run QC on the case's series, store the report, set qc_status and move an
    imported case into QC. An overridden failure stays overridden only if it
    still fails; a now-passing series simply passes."""
    project = Project.objects.get(pk=case.project_id)  # the profile as it is now
    profile = profile_for(project)
    report = qc.run_series(_series_input(case), profile)
    row = QcReport.objects.create(
        case=case,
        status=report.status,
        profile=profile.to_dict(),
        profile_version=project.qc_profile_version,
        results=[r.to_dict() for r in report.results],
    )
    status = STATUS.get(report.status, Case.QcStatus.WARN)
    if case.qc_status == Case.QcStatus.OVERRIDDEN and status == Case.QcStatus.FAIL:
        status = Case.QcStatus.OVERRIDDEN
    updates = {"qc_status": status}
    if case.state == Case.State.IMPORTED:
        updates["state"] = Case.State.QC
    Case.objects.filter(pk=case.pk).update(**updates)
    if status == Case.QcStatus.FAIL and case.state in IN_READING:
        # Not silently kept: the manager and the case's readers see the flag.
        raise_flag(
            case,
            CaseFlag.Kind.QC_FAILED_IN_READING,
            by=by,
            data={"rules": [r["rule"] for r in row.failing() if r["status"] == "fail"]},
        )
    elif status != Case.QcStatus.FAIL:
        resolve_flags(
            case, CaseFlag.Kind.QC_FAILED_IN_READING, by=by, resolution=f"QC now {status}"
        )
    audit.record(
        "case.qc_checked",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={
            "status": report.status,
            "failing": [r["rule"] for r in row.failing() if r["status"] == "fail"],
        },
    )
    case.refresh_from_db()
    return row


def warnings_of(report: QcReport | None) -> list[dict]:
    if report is None:
        return []
    return _reader_warnings(report.results)


def latest_reports(case_ids) -> dict[int, QcReport]:
    """The latest QC report of each case, in one query."""
    latest: dict[int, QcReport] = {}
    for report in QcReport.objects.filter(case_id__in=case_ids).order_by("case_id", "-created_at"):
        latest.setdefault(report.case_id, report)
    return latest


@transaction.atomic
def override_qc(case: Case, *, by, reason: str) -> Case:
    if not reason.strip():
        raise ValidationError(gettext("A QC override needs a reason."))
    if case.qc_status != Case.QcStatus.FAIL:
        raise TransitionError(
            gettext("Case %(case)s did not fail QC (status %(status)s).")
            % {"case": case, "status": case.qc_status}
        )
    Case.objects.filter(pk=case.pk).update(qc_status=Case.QcStatus.OVERRIDDEN)
    audit.record(
        "case.qc_overridden",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={"reason": reason},
    )
    case.refresh_from_db()
    return case


# ---------------------------------------------------------------- case flags

# Cases whose reads are under way or being decided: a QC failure found now is
# flagged instead of being kept silently.
IN_READING = (Case.State.READING, Case.State.ARBITRATION)


def raise_flag(case: Case, kind: str, *, by=None, reason: str = "", data=None) -> CaseFlag:
    """Open a flag of `kind` on the case (one open flag per kind: a second call
    returns the open one). Audited as "case.flagged"."""
    current = CaseFlag.objects.filter(case=case, kind=kind, resolved_at__isnull=True).first()
    if current is not None:
        return current
    flag = CaseFlag.objects.create(
        case=case,
        kind=kind,
        reason=reason,
        data=data or {},
        raised_by=by if by is not None and by.is_authenticated else None,
    )
    audit.record(
        "case.flagged",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={"kind": kind, "reason": reason, "flag": flag.pk, **(data or {})},
    )
    return flag


def resolve_flags(case: Case, kind: str, *, by=None, resolution: str = "") -> int:
    """Close the case's open flags of `kind`; audited as "case.flag_resolved"."""
    from django.utils import timezone

    flags = list(CaseFlag.objects.filter(case=case, kind=kind, resolved_at__isnull=True))
    for flag in flags:
        CaseFlag.objects.filter(pk=flag.pk).update(
            resolved_at=timezone.now(),
            resolved_by=by if by is not None and by.is_authenticated else None,
            resolution=resolution,
        )
        audit.record(
            "case.flag_resolved",
            actor=by,
            obj=case,
            project_id=case.project_id,
            data={"kind": kind, "flag": flag.pk, "resolution": resolution},
        )
    return len(flags)


def open_flags(case_ids) -> dict[int, list[CaseFlag]]:
    """The open flags of each case, in one query. A QC failure flag whose case
    was overridden since is no longer shown (the manager decided)."""
    out: dict[int, list[CaseFlag]] = {}
    rows = (
        CaseFlag.objects.filter(case_id__in=list(case_ids), resolved_at__isnull=True)
        .exclude(kind=CaseFlag.Kind.QC_FAILED_IN_READING, case__qc_status=Case.QcStatus.OVERRIDDEN)
        .order_by("case_id", "raised_at")
    )
    for flag in rows:
        out.setdefault(flag.case_id, []).append(flag)
    return out


def rule_changes(before: QcReport | None, after: QcReport) -> list[dict]:
    """Per rule, what a re-run changed: [{rule, before, after, en, zh}], only the
    rules whose status differs (a rule new to the profile counts as changed)."""
    old = {r["rule"]: r for r in (before.results if before else [])}
    new = {r["rule"]: r for r in after.results}
    out = []
    for rule in sorted(set(old) | set(new)):
        a, b = old.get(rule), new.get(rule)
        was = a["status"] if a else None
        now = b["status"] if b else None
        if was != now:
            out.append(
                {
                    "rule": rule,
                    "before": was,
                    "after": now,
                    "en": (b or a or {}).get("message_en", ""),
                    "zh": (b or a or {}).get("message_zh", ""),
                }
            )
    return out
