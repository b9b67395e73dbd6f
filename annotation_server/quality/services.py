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
from annotation_server.quality.models import QcReport
from qc.result import reader_warnings as _reader_warnings


def profile_for(project) -> qc.Profile:
    modality = project.modalities[0] if project.modalities else ""
    if not project.qc_profile:
        return qc.Profile.default_for(modality)
    data = dict(project.qc_profile)
    data.setdefault("base", modality)
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
        raise ValidationError("A QC override needs a reason.")
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
