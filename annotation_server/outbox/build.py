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
from export.model import PackageInput


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
    inp, digest = case_reference_input(case, hospital=hospital)
    objects = reference_objects(inp, {case.code: case.pk})
    if not objects:
        raise NothingToSend(
            _("Case %(case)s has no reference finding to send (none included, or none with area).")
            % {"case": case.code}
        )
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
