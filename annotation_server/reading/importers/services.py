"""Importing existing reads as submitted reads, and exporting them.

`import_file` takes one file (LIDC-IDRI XML or RefSet JSON) and, in one
transaction, turns every read in it into a submitted ReadingTask of the case
whose series it names, with Findings in the workstation's geometry model
(reading/geometry.py): contours per slice in pixel coordinates, points for
LIDC's small nodules and non-nodules, the patient-space centre computed from
the series' geometry. Exclusion outlines (LIDC's inclusion FALSE) are kept
under the geometry's "exclusions" and further outlines of one slice under
"extra_inclusions"; the workstation draws the main outline.

Matching: the series by its UID in the project (the de-identified UID, or the
original one through the project's key store, looked up by keyed hash without
revealing anything), else, for RefSet JSON, by case code. Each outline's image
by SOP Instance UID (same two ways), else by z position within half a slice,
else (RefSet JSON) by slice index.

Readers are pseudonymous accounts made for the file: one per LIDC
readingSession, one per reader pseudonym in a RefSet file. They carry no name,
cannot sign in, and hold no project role (assignment never picks them). The
account is derived from the project, the file's SHA-256 and the reader, so the
same file imported twice is refused instead of doubling the reads.

A file with any error (malformed XML, unknown series, an outline that matches
no image, a case that is not open for reading, a value the schema refuses)
imports nothing; the report says why. After the reads are in, each case goes
the way a submission goes (reading.phases.after_submit): when its last phase is
complete it is queued for settling, so matching, arbitration and agreement run
on imported reads as on any other. Every file is audited, imported or refused.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext

from annotation_server.accounts.models import UserProfile
from annotation_server.audit import services as audit
from annotation_server.imaging.ingest import keys
from annotation_server.imaging.models import IdentityMapping, Instance, Series
from annotation_server.projects import schema as schema_rules
from annotation_server.projects.models import Case, Project
from annotation_server.projects.services import transition
from annotation_server.reading import phases
from annotation_server.reading.geometry import validate_geometry
from annotation_server.reading.importers import lidc_xml, refset_json
from annotation_server.reading.importers.model import (
    FindingIn,
    ReadIn,
    SeriesReadsIn,
    ShapeIn,
    SliceRef,
)
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask

FORMATS = ("lidc-xml", "refset-json")
MAX_FILE_BYTES = 50 * 1024 * 1024

# LIDC characteristic -> the schema attribute key it fills, where the schema has it.
LIDC_ATTRIBUTES = {
    "subtlety": "subtlety",
    "internalStructure": "internal_structure",
    "calcification": "calcification",
    "sphericity": "sphericity",
    "margin": "margin",
    "lobulation": "lobulation",
    "spiculation": "spiculation",
    "texture": "texture",
    "malignancy": "malignancy",
}
NODULE_TYPE_KEYS = ("nodule",)
NON_NODULE_TYPE_KEYS = ("non_nodule", "nonnodule")


class ImportRefused(Exception):
    """Raised inside a file's transaction to undo it; the report holds why."""


@dataclass
class FileReport:
    name: str
    format: str
    sha256: str = ""
    imported: bool = False
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unmatched_instances: list[str] = field(default_factory=list)
    unknown_series: list[str] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)
    reads: int = 0
    findings: int = 0
    readers: list[str] = field(default_factory=list)
    settling: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def detect_format(name: str, data: bytes) -> str:
    """The format a file's name or first bytes say (JSON starts with "{")."""
    lowered = name.lower()
    if lowered.endswith(".json"):
        return "refset-json"
    if lowered.endswith(".xml"):
        return "lidc-xml"
    return "refset-json" if data.lstrip()[:1] == b"{" else "lidc-xml"


# ---------------------------------------------------------------- parsing


def _area(points: list[tuple[float, float]]) -> float:
    return abs(
        sum(
            points[i][0] * points[(i + 1) % len(points)][1]
            - points[(i + 1) % len(points)][0] * points[i][1]
            for i in range(len(points))
        )
        / 2
    )


def _lidc_ref(roi_z: float | None, sop: str) -> SliceRef:
    return SliceRef(sop_uid=sop, z=roi_z)


def lidc_reads(doc: lidc_xml.Document) -> SeriesReadsIn:
    """LIDC sessions as reads: nodules as contours (or points when small), the
    nine characteristics kept raw for the schema mapping, non-nodules as points."""
    out = SeriesReadsIn(series_uid=doc.series_uid, study_uid=doc.study_uid)
    for index, session in enumerate(doc.sessions, start=1):
        read = ReadIn(reader_key=f"{index}:{session.reader_id}")
        for nodule in session.nodules:
            label = f"reader {session.reader_id}, {nodule.nodule_id}"
            origin = {"format": "lidc-xml", "id": nodule.nodule_id}
            if nodule.is_small:
                read.findings.append(
                    FindingIn(
                        label=label,
                        role="nodule",
                        kind="point",
                        shapes=[
                            ShapeIn(_lidc_ref(r.z, r.sop_uid), [list(r.points[0])])
                            for r in nodule.rois
                        ],
                        raw_characteristics=nodule.characteristics,
                        origin={**origin, "small": True},
                    )
                )
                continue
            by_slice: dict[tuple[str, float | None], list] = {}
            exclusions = []
            for roi in nodule.rois:
                if len(roi.points) < 3:
                    continue  # a stray point inside a large nodule's outline set
                shape = ShapeIn(_lidc_ref(roi.z, roi.sop_uid), [list(p) for p in roi.points])
                if roi.inclusion:
                    by_slice.setdefault((roi.sop_uid, roi.z), []).append((roi, shape))
                else:
                    exclusions.append(shape)
            shapes, extra = [], []
            for items in by_slice.values():
                items.sort(key=lambda item: -_area(item[0].points))
                shapes.append(items[0][1])
                extra.extend(s for _, s in items[1:])
            read.findings.append(
                FindingIn(
                    label=label,
                    role="nodule",
                    kind="contour",
                    shapes=shapes,
                    exclusions=exclusions,
                    extra_inclusions=extra,
                    raw_characteristics=nodule.characteristics,
                    origin=origin,
                )
            )
        for nn in session.non_nodules:
            read.findings.append(
                FindingIn(
                    label=f"reader {session.reader_id}, {nn.non_nodule_id}",
                    role="non_nodule",
                    kind="point",
                    shapes=[ShapeIn(_lidc_ref(nn.z, nn.sop_uid), [list(nn.point)])],
                    origin={"format": "lidc-xml", "id": nn.non_nodule_id},
                )
            )
        out.reads.append(read)
    return out


# ---------------------------------------------------------------- resolving


class _SeriesIndex:
    """A series' images: by SOP UID, by original SOP UID (keyed hash), by z."""

    def __init__(self, project: Project, series: Series, wanted_uids: set[str]):
        self.series = series
        rows = list(
            Instance.objects.filter(series=series, frame=0)
            .order_by("slice_index")
            .values("sop_instance_uid", "slice_index", "position")
        )
        self.positions: dict[int, list[float] | None] = {}
        self.by_uid: dict[str, int] = {}
        for r in rows:
            self.by_uid[r["sop_instance_uid"]] = r["slice_index"]
            self.positions.setdefault(r["slice_index"], r["position"])
        unknown = {u for u in wanted_uids if u and u not in self.by_uid}
        if unknown:
            mapped = _replacements(project, IdentityMapping.Kind.SOP_UID, unknown)
            for original, replacement in mapped.items():
                if replacement in self.by_uid:
                    self.by_uid[original] = self.by_uid[replacement]
        zs = sorted(
            (float(p[2]), i)
            for i, p in self.positions.items()
            if isinstance(p, list | tuple) and len(p) == 3
        )
        self.zs = zs
        steps = [b[0] - a[0] for a, b in zip(zs, zs[1:], strict=False) if b[0] - a[0] > 0]
        spacing = (
            series.slice_spacing_mm
            or (sorted(steps)[len(steps) // 2] if steps else None)
            or series.slice_thickness_mm
            or 1.0
        )
        self.half_slice = float(spacing) / 2
        spacing_px = series.pixel_spacing_mm or [1.0, 1.0]
        try:
            self.pixel = (float(spacing_px[0]), float(spacing_px[1]))
        except (TypeError, ValueError, IndexError):
            self.pixel = (1.0, 1.0)
        orient = series.orientation or [1, 0, 0, 0, 1, 0]
        self.row_cos = [float(v) for v in orient[:3]]
        self.col_cos = [float(v) for v in orient[3:6]]

    def slice_for(self, ref: SliceRef, allow_index: bool) -> int | None:
        if ref.sop_uid and ref.sop_uid in self.by_uid:
            return self.by_uid[ref.sop_uid]
        if ref.z is not None and self.zs:
            z, index = min(self.zs, key=lambda item: abs(item[0] - ref.z))
            if abs(z - ref.z) <= self.half_slice + 1e-6:
                return index
        located = bool(ref.sop_uid) or ref.z is not None
        if allow_index and not located and ref.slice_index in self.positions:
            return ref.slice_index
        return None

    def to_patient(self, slice_index: float, col: float, row: float) -> list[float] | None:
        lo = self.positions.get(int(math.floor(slice_index)))
        hi = self.positions.get(int(math.ceil(slice_index)))
        if not (isinstance(lo, list | tuple) and isinstance(hi, list | tuple)):
            return None
        t = slice_index - math.floor(slice_index)
        origin = [lo[k] + (hi[k] - lo[k]) * t for k in range(3)]
        return [
            round(
                origin[k]
                + self.row_cos[k] * col * self.pixel[1]
                + self.col_cos[k] * row * self.pixel[0],
                4,
            )
            for k in range(3)
        ]


def _replacements(project: Project, kind: str, originals: set[str]) -> dict[str, str]:
    """Original UID -> this project's replacement, through the key store's keyed
    hashes (nothing is decrypted)."""
    if not originals:
        return {}
    secret = keys.project_secret(project)
    digests = {keys._digest(secret, kind, o): o for o in originals}
    rows = IdentityMapping.objects.filter(
        project=project, kind=kind, original_digest__in=list(digests)
    ).values_list("original_digest", "replacement")
    return {digests[d]: r for d, r in rows}


def _find_series(project: Project, item: SeriesReadsIn, allow_case_code: bool) -> Series | None:
    in_project = Series.objects.filter(study__project=project)
    if item.series_uid:
        found = in_project.filter(series_uid=item.series_uid).first()
        if found is not None:
            return found
        mapped = _replacements(project, IdentityMapping.Kind.SERIES_UID, {item.series_uid})
        if mapped:
            found = in_project.filter(series_uid=mapped[item.series_uid]).first()
            if found is not None:
                return found
    if allow_case_code and item.case_code:
        case = Case.objects.filter(project=project, code=item.case_code).first()
        if case is not None:
            return case.series
    return None


def _centre(index: _SeriesIndex, shapes: list[dict]) -> list[float] | None:
    planes = [s for s in shapes if s.get("points")]
    if not planes:
        return None
    cols = [sum(p[0] for p in s["points"]) / len(s["points"]) for s in planes]
    rows = [sum(p[1] for p in s["points"]) / len(s["points"]) for s in planes]
    slice_index = sum(s["slice_index"] for s in planes) / len(planes)
    return index.to_patient(slice_index, sum(cols) / len(cols), sum(rows) / len(rows))


def _long_axis_mm(index: _SeriesIndex, shapes: list[dict]) -> float | None:
    """The longest in-plane distance between two outline points of one slice (mm)."""
    best = 0.0
    for s in shapes:
        pts = s.get("points") or []
        for i in range(len(pts)):
            for j in range(i + 1, len(pts)):
                dc = (pts[i][0] - pts[j][0]) * index.pixel[1]
                dr = (pts[i][1] - pts[j][1]) * index.pixel[0]
                best = max(best, math.hypot(dc, dr))
    return round(best, 2) if best > 0 else None


class _Resolver:
    """Turns one series' reads into rows, collecting every problem first."""

    def __init__(self, project: Project, report: FileReport, fmt: str):
        self.project = project
        self.report = report
        self.fmt = fmt
        self.definition = project.label_schema.definition
        self.types = {t["key"]: t for t in self.definition.get("finding_types", [])}

    def _type_for(self, f: FindingIn) -> str | None:
        if f.role == "typed":
            return f.finding_type
        keys_ = NODULE_TYPE_KEYS if f.role == "nodule" else NON_NODULE_TYPE_KEYS
        for key in keys_:
            if key in self.types:
                return key
        return None

    def _shapes(self, index: _SeriesIndex, items: list[ShapeIn], f: FindingIn) -> list[dict]:
        out = []
        for shape in items:
            s = index.slice_for(shape.ref, allow_index=self.fmt == "refset-json")
            if s is None:
                self.report.unmatched_instances.append(f"{f.label}: {shape.ref.describe()}")
                continue
            row: dict[str, Any] = {"slice_index": s}
            if shape.mask_ref is not None:
                row["mask_ref"] = shape.mask_ref
            if shape.points is not None:
                row["points"] = shape.points
            out.append(row)
        return out

    def _attributes(self, f: FindingIn, ftype: dict, shapes: list[dict], index) -> dict:
        defs = {a["key"]: a for a in ftype.get("attributes", [])}
        if f.role == "typed":
            return dict(f.attributes)
        attrs: dict[str, Any] = {}
        for name, raw in f.raw_characteristics.items():
            key = LIDC_ATTRIBUTES.get(name)
            if key not in defs:
                continue
            try:
                value: Any = int(raw) if defs[key]["kind"] in ("ordinal", "number") else raw
            except ValueError:
                value = raw
            try:
                schema_rules.validate_values([defs[key]], {key: value}, complete=False)
            except schema_rules.SchemaError:
                self.report.warnings.append(
                    gettext("%(finding)s: %(name)s = %(value)s is outside the schema; left out.")
                    % {"finding": f.label, "name": name, "value": raw}
                )
                continue
            attrs[key] = value
        long_axis = defs.get("long_axis_mm")
        if f.kind == "contour" and long_axis is not None and long_axis["kind"] == "number":
            measured = _long_axis_mm(index, shapes)
            if measured is not None:
                try:
                    schema_rules.validate_values(
                        [long_axis], {"long_axis_mm": measured}, complete=False
                    )
                    attrs["long_axis_mm"] = measured
                except schema_rules.SchemaError:
                    pass
        return attrs

    def finding_rows(self, index: _SeriesIndex, read: ReadIn) -> list[dict]:
        rows = []
        for f in read.findings:
            type_key = self._type_for(f)
            if type_key is None and f.role == "non_nodule":
                self.report.warnings.append(
                    gettext(
                        "%(finding)s: the schema has no non-nodule finding type; "
                        "the non-nodule is left out."
                    )
                    % {"finding": f.label}
                )
                continue
            if type_key is None:
                self.report.errors.append(
                    gettext("%(finding)s: the schema has no nodule finding type.")
                    % {"finding": f.label}
                )
                continue
            ftype = self.types.get(type_key)
            if ftype is None:
                self.report.errors.append(
                    gettext("%(finding)s: finding type %(type)s is not in the project's schema.")
                    % {"finding": f.label, "type": type_key}
                )
                continue
            before = len(self.report.unmatched_instances)
            shapes = self._shapes(index, f.shapes, f)
            exclusions = self._shapes(index, f.exclusions, f)
            extra = self._shapes(index, f.extra_inclusions, f)
            if len(self.report.unmatched_instances) > before:
                continue
            geometry: dict[str, Any] = {"kind": f.kind, "shapes": shapes}
            same_images = all(s.ref.sop_uid in index.by_uid for s in f.shapes)
            if f.role == "typed" and same_images:
                centre = f.centre_mm  # the same images: the centre as it was stored
            else:
                centre = _centre(index, shapes) or f.centre_mm
            geometry["centre_mm"] = centre
            if exclusions:
                geometry["exclusions"] = exclusions
            if extra:
                geometry["extra_inclusions"] = extra
            if f.origin:
                geometry["origin"] = f.origin
            attributes = self._attributes(f, ftype, shapes, index)
            try:
                validate_geometry(geometry)
                schema_rules.validate_finding(
                    self.definition, type_key, f.kind, attributes, complete=False
                )
            except schema_rules.SchemaError as exc:
                self.report.errors.extend(f"{f.label}: {e}" for e in exc.errors)
                continue
            if f.source not in Finding.Source.values:
                self.report.errors.append(
                    gettext("%(finding)s: unknown source %(source)s.")
                    % {"finding": f.label, "source": f.source}
                )
                continue
            rows.append(
                {
                    "finding_type": type_key,
                    "geometry": geometry,
                    "attributes": attributes,
                    "source": f.source,
                    "centre": centre or [None, None, None],
                }
            )
        return rows


def _reader_account(project: Project, sha: str, reader_key: str, prefix: str):
    """The pseudonymous account of one reader of one file (see the module doc)."""
    User = get_user_model()
    digest = hashlib.sha256(f"{project.pk}\x00{sha}\x00{reader_key}".encode()).hexdigest()
    username = f"imported-{digest[:24]}"
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User(username=username, is_active=False)
        user.set_unusable_password()
        user.save()
        UserProfile.objects.create(user=user, pseudonym=f"{prefix}{digest[:8].upper()}")
    return user


def _submitted_at(value: str | None) -> datetime:
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        return timezone.now()
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.get_current_timezone())
    return min(parsed, timezone.now())


def _import_series(project, item: SeriesReadsIn, report: FileReport, fmt: str, actor) -> None:
    protocol = project.protocol
    series = _find_series(project, item, allow_case_code=fmt == "refset-json")
    if series is None:
        report.unknown_series.append(item.series_uid or item.case_code or "?")
        return
    case = Case.objects.select_for_update().filter(project=project, series=series).first()
    if case is None:
        report.unknown_series.append(item.series_uid or series.series_uid)
        return
    if case.state not in (Case.State.QC, Case.State.READING) or case.is_qualification:
        report.errors.append(
            gettext(
                "Case %(case)s is in %(state)s: reads are imported only into cases that "
                "passed QC and are not yet settled."
            )
            % {"case": case.code, "state": case.get_state_display()}
        )
        return
    if case.state == Case.State.QC:
        readable = (Case.QcStatus.PASS, Case.QcStatus.WARN, Case.QcStatus.OVERRIDDEN)
        if case.qc_status not in readable:
            report.errors.append(
                gettext("Case %(case)s has not passed QC (%(status)s).")
                % {"case": case.code, "status": case.get_qc_status_display()}
            )
            return
    last_phase = max(protocol.phases)
    uids = {s.ref.sop_uid for r in item.reads for f in r.findings for s in f.shapes}
    uids |= {s.ref.sop_uid for r in item.reads for f in r.findings for s in f.exclusions}
    index = _SeriesIndex(project, series, uids)
    resolver = _Resolver(project, report, fmt)
    prefix = "LIDC-" if fmt == "lidc-xml" else "IMP-"
    planned = []
    for read in item.reads:
        phase = read.phase or last_phase
        if phase not in protocol.phases:
            report.errors.append(
                gettext("Case %(case)s: the protocol has no phase %(phase)s.")
                % {"case": case.code, "phase": phase}
            )
            continue
        rows = resolver.finding_rows(index, read)
        labels = read.labels or {}
        try:
            schema_rules.validate_values(
                resolver.definition.get("case_fields", []), labels, complete=False, where="case"
            )
        except schema_rules.SchemaError as exc:
            report.errors.extend(f"{case.code}, {read.reader_key}: {e}" for e in exc.errors)
        planned.append((read, phase, rows, labels))
    phases_in = {phase for _, phase, _, _ in planned}
    if planned and last_phase not in phases_in:
        report.errors.append(
            gettext(
                "Case %(case)s: the protocol's last phase is %(phase)s, and the file holds "
                "no read of it."
            )
            % {"case": case.code, "phase": last_phase}
        )
    if report.errors or report.unmatched_instances:
        return
    last_task = None
    for read, phase, rows, labels in planned:
        user = _reader_account(project, report.sha256, read.reader_key, prefix)
        if ReadingTask.objects.filter(case=case, reader=user, phase=phase).exists():
            report.errors.append(
                gettext("Case %(case)s: the reads of this file are already imported.")
                % {"case": case.code}
            )
            return
        submitted = _submitted_at(read.submitted_at)
        task = ReadingTask.objects.create(
            case=case,
            reader=user,
            phase=phase,
            state=ReadingTask.State.SUBMITTED,
            started_at=submitted,
            submitted_at=submitted,
        )
        Finding.objects.bulk_create(
            Finding(
                task=task,
                finding_type=r["finding_type"],
                geometry=r["geometry"],
                attributes=r["attributes"],
                source=r["source"],
                centre_x_mm=r["centre"][0],
                centre_y_mm=r["centre"][1],
                centre_z_mm=r["centre"][2],
            )
            for r in rows
        )
        if labels:
            CaseLabel.objects.create(task=task, values=labels)
        report.reads += 1
        report.findings += len(rows)
        report.readers.append(user.profile.pseudonym)
        if last_task is None or phase >= last_task.phase:
            last_task = task
    if case.state == Case.State.QC:
        case = transition(case, Case.State.READING, by=actor, reason="reads imported")
    report.cases.append(case.code)
    if last_task is not None:
        queued_before = _settle_jobs(case)
        phases.after_submit(last_task, actor)  # as a submission: next phase or settling
        if _settle_jobs(case) > queued_before:
            report.settling.append(case.code)


def _settle_jobs(case: Case) -> int:
    from annotation_server.jobs.models import Job

    return Job.objects.filter(kind="adjudication.settle", params__case_id=case.pk).count()


def _parse(report: FileReport, data: bytes) -> list[SeriesReadsIn]:
    if report.format == "lidc-xml":
        doc = lidc_xml.parse(data)
        report.errors.extend(doc.problems)
        if doc.skipped_cxr_sessions:
            report.warnings.append(
                gettext("Chest-radiograph reading sessions left out (not CT reads): %(n)s.")
                % {"n": doc.skipped_cxr_sessions}
            )
        if not doc.sessions:
            report.errors.append(gettext("The file holds no readingSession."))
        if not doc.series_uid:
            report.errors.append(gettext("The ResponseHeader names no SeriesInstanceUid."))
        return [lidc_reads(doc)]
    return refset_json.parse(data)


def import_file(
    project: Project, name: str, data: bytes, fmt: str | None = None, *, actor=None
) -> FileReport:
    """Import one file; all of it or nothing (see the module doc). Never raises
    for a bad file: the report says what was wrong."""
    fmt = fmt or detect_format(name, data)
    report = FileReport(name=name, format=fmt, sha256=hashlib.sha256(data).hexdigest())
    if fmt not in FORMATS:
        report.errors.append(
            gettext("Unknown format %(format)s; known: %(known)s.")
            % {"format": fmt, "known": ", ".join(FORMATS)}
        )
    elif len(data) > MAX_FILE_BYTES:
        report.errors.append(gettext("The file is larger than 50 MB."))
    else:
        try:
            items = _parse(report, data)
        except (lidc_xml.LidcFormatError, refset_json.RefsetFormatError) as exc:
            report.errors.append(str(exc))
            items = []
        if not report.errors:
            try:
                with transaction.atomic():
                    for item in items:
                        _import_series(project, item, report, fmt, actor)
                    if report.unknown_series:
                        report.errors.append(
                            gettext("The series %(series)s is not in this project.")
                            % {"series": ", ".join(report.unknown_series)}
                        )
                    if report.unmatched_instances:
                        report.errors.append(
                            gettext("Outlines that match no image of the series: %(n)s.")
                            % {"n": len(report.unmatched_instances)}
                        )
                    if report.errors:
                        raise ImportRefused
                    report.imported = True
                    audit.record(
                        "reads.imported",
                        actor=actor,
                        obj=project,
                        project_id=project.pk,
                        data=_audit_data(report),
                    )
            except ImportRefused:
                pass
    if not report.imported:
        report.cases, report.readers, report.settling = [], [], []
        report.reads = report.findings = 0
        audit.record(
            "reads.import_refused",
            actor=actor,
            obj=project,
            project_id=project.pk,
            data=_audit_data(report),
        )
    return report


def _audit_data(report: FileReport) -> dict:
    return {
        "file": report.name,
        "format": report.format,
        "sha256": report.sha256,
        "cases": report.cases,
        "reads": report.reads,
        "findings": report.findings,
        "readers": report.readers,
        "errors": report.errors[:50],
        "unknown_series": report.unknown_series[:50],
        "unmatched_instances": report.unmatched_instances[:50],
    }


def import_files(
    project: Project, files, fmt: str | None = None, *, actor=None
) -> list[FileReport]:
    """Each (name, bytes) in its own transaction: one bad file stops only itself."""
    return [import_file(project, name, data, fmt, actor=actor) for name, data in files]


# ---------------------------------------------------------------- exporting


def export_reads(project: Project) -> dict:
    """The project's submitted reads in RefSet's JSON read format (see refset_json)."""
    tasks = (
        ReadingTask.objects.operational()
        .filter(case__project=project, state=ReadingTask.State.SUBMITTED)
        .select_related("case__series__study", "reader__profile")
        .order_by("case__code", "phase", "id")
    )
    labels = {
        label.task_id: label.values
        for label in CaseLabel.objects.filter(task__in=tasks).only("task_id", "values")
    }
    findings: dict[int, list[Finding]] = {}
    for f in Finding.objects.filter(task__in=tasks).order_by("task_id", "created_at", "id"):
        findings.setdefault(f.task_id, []).append(f)
    images: dict[int, dict[int, tuple[str, float | None]]] = {}
    cases: dict[int, dict] = {}
    for task in tasks:
        case = task.case
        series = case.series
        if series.pk not in images:
            images[series.pk] = {
                i: (uid, float(pos[2]) if isinstance(pos, list) and len(pos) == 3 else None)
                for uid, i, pos in Instance.objects.filter(series=series, frame=0).values_list(
                    "sop_instance_uid", "slice_index", "position"
                )
            }
        entry = cases.setdefault(
            case.pk,
            {
                "case": case.code,
                "series_uid": series.series_uid,
                "study_uid": series.study.study_uid,
                "reads": [],
            },
        )
        profile = getattr(task.reader, "profile", None)
        entry["reads"].append(
            {
                "reader": profile.pseudonym if profile else f"user-{task.reader_id}",
                "phase": task.phase,
                "submitted_at": task.submitted_at.isoformat() if task.submitted_at else None,
                "labels": labels.get(task.pk, {}),
                "findings": [
                    _export_finding(f, images[series.pk]) for f in findings.get(task.pk, [])
                ],
            }
        )
    return {
        "format": refset_json.FORMAT,
        "version": refset_json.VERSION,
        "project": project.slug,
        "schema": {"key": project.label_schema.key, "version": project.label_schema.version},
        "exported_at": timezone.now().isoformat(),
        "cases": list(cases.values()),
    }


def _export_shapes(shapes, images) -> list[dict]:
    out = []
    for s in shapes or []:
        row = dict(s)
        uid, z = images.get(s.get("slice_index"), ("", None))
        if uid:
            row["sop_instance_uid"] = uid
        if z is not None:
            row["z_mm"] = z
        out.append(row)
    return out


def _export_finding(f: Finding, images) -> dict:
    geometry = dict(f.geometry or {})
    for key in ("shapes", "exclusions", "extra_inclusions"):
        if key in geometry:
            geometry[key] = _export_shapes(geometry[key], images)
    return {
        "uid": str(f.uid),
        "finding_type": f.finding_type,
        "geometry": geometry,
        "attributes": f.attributes or {},
        "source": f.source,
    }
