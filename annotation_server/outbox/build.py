"""What goes out, built by the export's own builders (export/seg.py, export/sr.py
`for_reference`) from the export's plain data (datasets/package_input.py).

- A case's reference standard: the case as it is now, snapshotted as a freeze
  would (datasets.snapshot.case_snapshot), turned into a one-case PackageInput by
  `build_package_input` itself (through `_LiveVersion`, which offers the few
  attributes of a DatasetVersion it reads), then one DICOM SEG and one TID 1500
  Comprehensive 3D SR per series with a current reference.
- A frozen version: its own PackageInput (the sequestered test split left out for
  a user who may not see it), the SEG and SR of every series with a reference and,
  for a research archive, the de-identified images they reference.

UIDs. The builders derive every UID from (dataset id, version, what the object
is), so building the same thing twice gives the same UIDs and bytes. For a case
reference the "version" is ``case-<code>-reference-<digest>``, the digest naming
the current reference revisions (datasets.snapshot.reference_digest), and the
content time is the latest decision of that reference: a new revision gets new
UIDs (a PACS answers 409 to a known UID with other content), the same revision
the same bytes. A hospital copy gets its own UIDs (``...-hospital``), since its
content differs from the de-identified copy's.

Reads and model proposals (`case_objects`, when the protocol's `writeback_reads`
says so). Each submitted read of the case goes as the export writes it
(export/seg.py and export/sr.py `for_read`): its SEG and its TID 1500 SR, the
reader named only by the pseudonymous observer code the export uses. The
model's current proposals on the case go, per model version, as one SEG whose
segments are AUTOMATIC with the model in the Segment Algorithm Identification,
and one TID 1500 SR whose observer is a device (the model: name, version, a UID
derived from its weights), as the IHE AI Results profile encodes an AI finding.
RefSet differs from AIR there in giving no AI-result-specific codes for the
finding type (the project's own ``99REFSET`` coded finding, as the export writes
it) and in sending no confidence as a measurement (the proposal's score stays in
RefSet).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from typing import Any

import pydicom
from django.utils.translation import gettext as _

from annotation_server.datasets.package_input import build_package_input
from annotation_server.datasets.snapshot import (
    case_snapshot,
    current_reference,
    project_snapshot,
    reference_digest,
)
from annotation_server.errors import DomainError
from export import fundus, fundus_seg
from export import seg as seg_builder
from export import sr as sr_builder
from export.dicom_common import derived_uid
from export.model import FindingRecord, PackageInput, ReadRecord


class NothingToSend(DomainError):
    """The case or version has no reference object to build."""


@dataclass
class _LiveCase:
    case_code: str
    snapshot: dict
    patient_pseudo_id: str
    case_label: str = ""
    split: str = ""
    retired: bool = False
    retired_reason: str = ""


class _LiveCases(list):
    def order_by(self, *_fields):
        return self


@dataclass
class _LiveVersion:
    """The attributes of a DatasetVersion that build_package_input reads."""

    version: str
    snapshot: dict
    cases: _LiveCases
    frozen_at: Any = None
    title: str = ""
    frozen: bool = True
    parent: Any = None
    changelog: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Built:
    """One object to send: its Part 10 bytes and what it is."""

    data: bytes
    carries: str  # OutboxItem.Carries
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    case_id: int | None = None


def _part10(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _built(ds: pydicom.Dataset, carries: str, case_id: int | None) -> Built:
    return Built(
        data=_part10(ds),
        carries=carries,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        case_id=case_id,
    )


def _latest_decision(snapshot: dict) -> str:
    current = current_reference(snapshot)
    stamps = [f.get("decided_at") or "" for f in current["findings"].values()]
    if current["labels"]:
        stamps.append(current["labels"].get("decided_at") or "")
    return max(stamps, default="")


def case_reference_input(case, *, hospital: bool) -> tuple[PackageInput, str]:
    """The one-case PackageInput of `case`'s current reference, and its digest."""
    snapshot, _rows = case_snapshot(case)
    project, _rows = project_snapshot(case.project, [snapshot])
    digest = reference_digest(snapshot)
    version = f"case-{case.code}-reference-{digest[:16]}" + ("-hospital" if hospital else "")
    live = _LiveVersion(
        version=version,
        snapshot=project,
        cases=_LiveCases(
            [
                _LiveCase(
                    case_code=case.code,
                    snapshot=snapshot,
                    patient_pseudo_id=snapshot["series"].get("patient_pseudo_id", ""),
                )
            ]
        ),
    )
    inp = build_package_input(live)
    return replace(inp, frozen_at=_latest_decision(snapshot)), digest


def reference_objects(inp: PackageInput, case_ids: dict[str, int]) -> list[Built]:
    """The SEG and SR of every series with a current reference (a series whose
    reference has no area has no SEG; one with no measurable finding no SR)."""
    by_series = inp.series_by_uid()
    # photographs take the SEG built on their single-frame OP/VL images
    segs = fundus_seg if fundus.applies(inp) else seg_builder
    refs: dict[str, list] = {}
    for ref in inp.reference:
        refs.setdefault(ref.series_uid, []).append(ref)
    out: list[Built] = []
    for series_uid in sorted(refs):
        series = by_series.get(series_uid)
        if series is None:
            continue
        case_id = case_ids.get(refs[series_uid][0].case_id)
        seg = segs.for_reference(inp, series, refs[series_uid])
        if seg is not None:
            out.append(_built(seg, "reference_seg", case_id))
        sr = sr_builder.for_reference(inp, series, refs[series_uid])
        if sr is not None:
            out.append(_built(sr, "reference_sr", case_id))
    return out


def case_reference(case, *, hospital: bool) -> tuple[list[Built], str]:
    """The SEG and SR of `case`'s current reference standard, and its digest."""
    return case_objects(case, hospital=hospital, reads=False, model=False)


def read_objects(inp: PackageInput, case_id: int, submitted: set[str]) -> list[Built]:
    """The SEG and SR of each submitted read (`submitted`: their read ids) with
    findings (a read that marked nothing, or one not yet submitted, sends nothing)."""
    by_series = inp.series_by_uid()
    segs = fundus_seg if fundus.applies(inp) else seg_builder
    out: list[Built] = []
    for read in sorted(inp.reads, key=lambda r: (r.series_uid, r.phase, r.read_id)):
        series = by_series.get(read.series_uid)
        if series is None or read.read_id not in submitted or not read.findings:
            continue
        seg = segs.for_read(inp, read, series)
        if seg is not None:
            out.append(_built(seg, "read_seg", case_id))
        sr = sr_builder.for_read(inp, read, series)
        if sr is not None:
            out.append(_built(sr, "read_sr", case_id))
    return out


def _model_sr(inp: PackageInput, read: ReadRecord, series, model_version) -> pydicom.Dataset | None:
    """A TID 1500 SR of one model version's proposals, observed by a device."""
    observer = sr_builder.device_observer(
        derived_uid(inp, "model", model_version.weights_sha256 or model_version.pk),
        f"{model_version.name}",
        f"{model_version.version}",
    )
    return sr_builder.for_read(inp, read, series, observer=observer, series_number=700)


def model_objects(inp: PackageInput, case) -> list[Built]:
    """The SEG and SR of the model's current proposals on `case`, per model version."""
    from annotation_server.reading.models import Proposal

    by_series = inp.series_by_uid()
    segs = fundus_seg if fundus.applies(inp) else seg_builder
    groups: dict[tuple, list] = {}
    for p in (
        Proposal.objects.filter(case=case, current=True)
        .select_related("series", "model_version")
        .order_by("model_version_id", "id")
    ):
        groups.setdefault((p.model_version, p.series.series_uid), []).append(p)
    out: list[Built] = []
    for (mv, series_uid), proposals in groups.items():
        series = by_series.get(series_uid)
        if series is None:
            continue
        findings = tuple(
            FindingRecord(
                finding_id=f"proposal-{p.pk}",
                finding_type=p.finding_type,
                geometry=p.geometry,
                centre_mm=(p.centre_x_mm, p.centre_y_mm, p.centre_z_mm)
                if p.centre_x_mm is not None
                else None,
                attributes=p.attributes or {},
                confidence=p.score,
                source="model-accepted",  # export's vocabulary: a model-made finding
                model_name=mv.name,
                model_version=mv.version,
                model_sha256=mv.weights_sha256,
            )
            for p in proposals
            if p.geometry
        )
        if not findings:
            continue
        read = ReadRecord(
            read_id=f"model-{mv.pk}",
            case_id=case.code,
            series_uid=series_uid,
            reader_pseudo_id=mv.name,
            phase=0,
            findings=findings,
        )
        seg = segs.for_read(inp, read, series)
        if seg is not None:
            for item in seg.SegmentSequence:  # the model alone made these: AUTOMATIC
                item.SegmentAlgorithmType = "AUTOMATIC"
            out.append(_built(seg, "model_seg", case.pk))
        sr = _model_sr(inp, read, series, mv)
        if sr is not None:
            out.append(_built(sr, "model_sr", case.pk))
    return out


def case_objects(case, *, hospital: bool, reads: bool, model: bool) -> tuple[list[Built], str]:
    """`case`'s current reference SEG and SR, with (`reads`) each submitted read's
    and (`model`) the model's proposals' SEG and SR; and the reference digest."""
    inp, digest = case_reference_input(case, hospital=hospital)
    objects = reference_objects(inp, {case.code: case.pk})
    if not objects:
        raise NothingToSend(
            _("Case %(case)s has no reference finding to send (none included, or none with area).")
            % {"case": case.code}
        )
    if reads:
        from annotation_server.reading.models import ReadingTask

        submitted = {
            str(pk)
            for pk in ReadingTask.objects.operational()
            .filter(case=case, state=ReadingTask.State.SUBMITTED)
            .values_list("pk", flat=True)
        }
        objects += read_objects(inp, case.pk, submitted)
    if model:
        objects += model_objects(inp, case)
    return objects, digest


def version_objects(version, *, sequestered: bool, with_images: bool) -> list[Built]:
    """A frozen version's reference SEG and SR, and (`with_images`) the
    de-identified images of its non-retired cases, as stored."""
    from annotation_server.datasets.export_jobs import without_sequestered

    inp = build_package_input(version)
    if not sequestered:
        inp = without_sequestered(inp)
    case_ids = dict(version.cases.values_list("case_code", "case_id"))
    objects = reference_objects(inp, case_ids)
    if with_images:
        for case in inp.cases:
            if case.retired:
                continue
            for series in case.series:
                for instance in sorted(series.instances, key=lambda i: i.slice_index):
                    with open(instance.path, "rb") as fh:
                        data = fh.read()
                    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
                    objects.append(
                        Built(
                            data=data,
                            carries="image",
                            sop_class_uid=str(ds.SOPClassUID),
                            sop_instance_uid=str(ds.SOPInstanceUID),
                            study_uid=str(ds.StudyInstanceUID),
                            series_uid=str(ds.SeriesInstanceUID),
                            case_id=case_ids.get(case.case_id),
                        )
                    )
    if not objects:
        raise NothingToSend(_("Version %(v)s has nothing to send.") % {"v": version.version})
    return objects
