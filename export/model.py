"""What a dataset package is built from: plain data, no Django.

The datasets app turns a frozen DatasetVersion into one `PackageInput`
(annotation_server/datasets/package_input.py); every writer in export/ reads
only this. Everything here is already pseudonymous: reader ids, patient ids and
UIDs are the de-identified ones, and nothing carries a person's name.

Geometry is the workstation's model (annotation_server/reading/geometry.py):
{"kind": K, "shapes": [{"slice_index": i, "points": [[col, row], ...]}, ...],
"centre_mm": [x, y, z] | None}, points in image pixel coordinates of the
series' slice `slice_index` (instances sorted along the slice normal).

Times are ISO 8601 strings in UTC, so that writing them is deterministic.

Origin. A reader's finding is `manual`, `model-accepted` (a model proposal kept
as proposed) or `model-edited` (a proposal the reader reshaped or retyped), and
a model-sourced one names its assist model (`AssistModelRef`). A reference
finding is `model-derived` when at least one reader finding it was built from
(the marks that support it) was model-accepted or model-edited; it lists the
distinct models behind those marks and how many marks came from a model. One
model-sourced mark is enough: the consensus or arbitrated shape then rests on
a machine suggestion, and the package discloses every such influence rather
than judging it small. A finding an arbitrator added with no supporting mark is
manual. `PreAnnotation` holds what the findings cannot say: which models
offered proposals on the version's cases, what readers did with them, and
which cases were in the protocol's no-assistance arm.

Measurements (qc/measurements.py, the finding's `measurements` at freeze) are
in the units their names say: long and short axis and mean diameter in mm on
the outline's largest slice, volume in mm³ over the drawn slices, mean and max
inside in HU (CT only). A value the source could not give in that unit (no
pixel spacing: lengths in pixels; no slice spacing: no volume) is None, never
a number in another unit. `axes_from` says where the axes come from: `contour`
(computed from the outline), `reader` (axes the reader drew, which override
the contour's), `attribute` (a finding saved before measurements existed,
whose schema attribute long_axis_mm / short_axis_mm the reader typed), or ""
(no axes: a point, a line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InstanceRecord:
    sop_instance_uid: str
    sop_class_uid: str
    slice_index: int
    path: str  # readable file of the de-identified DICOM object
    sha256: str  # of the file's bytes
    position: tuple[float, float, float] | None = None  # ImagePositionPatient
    # the file format the image arrived in, when recorded at import: JPEG | PNG | TIFF | DICOM
    source_format: str = ""
    # the object's ImageLaterality (else Laterality) as recorded at import: R | L | B | U | "";
    # None for a version frozen before it was recorded (read the DICOM header then)
    laterality: str | None = None


@dataclass(frozen=True)
class SeriesRecord:
    series_uid: str
    study_uid: str
    modality: str
    frame_of_reference_uid: str = ""
    manufacturer: str = ""
    model: str = ""
    kvp: float | None = None
    kernel: str = ""
    slice_thickness_mm: float | None = None
    pixel_spacing_mm: tuple[float, float] | None = None  # (row, column)
    orientation: tuple[float, ...] | None = None  # ImageOrientationPatient, 6 values
    rows: int | None = None
    columns: int | None = None
    contrast: str = ""
    body_part: str = ""
    instances: tuple[InstanceRecord, ...] = ()


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    patient_pseudo_id: str
    site_id: str
    series: tuple[SeriesRecord, ...]
    split: str = ""  # train | validation | test | sequestered-test | ""
    acquisition_year: int | None = None
    age_band: str = ""
    sex: str = ""
    case_label: str = ""  # patient level: positive | negative | ""
    reference_standard_type: str = "expert panel"
    qc_status: str = ""
    retired: bool = False
    retired_reason: str = ""


ORIGINS = ("manual", "model-accepted", "model-edited")
REFERENCE_ORIGINS = ("manual", "model-derived")


@dataclass(frozen=True, order=True)
class AssistModelRef:
    """One version of an assist model, as its proposals recorded it."""

    name: str
    version: str = ""
    weights_sha256: str = ""

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}".strip()


@dataclass(frozen=True)
class FindingRecord:
    finding_id: str
    finding_type: str
    geometry: dict[str, Any]
    centre_mm: tuple[float, float, float] | None = None
    long_axis_mm: float | None = None
    short_axis_mm: float | None = None
    volume_mm3: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    confidence: float | None = None
    mean_diameter_mm: float | None = None
    mean_hu: float | None = None
    max_hu: float | None = None
    axes_from: str = ""  # contour | reader | attribute | "" (see the module docstring)
    source: str = "manual"  # manual | model-accepted | model-edited
    model_name: str = ""  # the assist model, for model-sourced findings
    model_version: str = ""
    model_sha256: str = ""  # its weights

    @property
    def model(self) -> AssistModelRef | None:
        """The assist model behind a model-sourced finding (None for a manual one)."""
        if self.source == "manual":
            return None
        return AssistModelRef(self.model_name, self.model_version, self.model_sha256)


@dataclass(frozen=True)
class ReadRecord:
    read_id: str
    case_id: str
    series_uid: str
    reader_pseudo_id: str
    phase: int
    started_at: str = ""
    submitted_at: str = ""
    findings: tuple[FindingRecord, ...] = ()
    case_labels: dict[str, Any] = field(default_factory=dict)
    tool_version: str = ""
    derived: dict[str, Any] = field(default_factory=dict)  # the schema's derived fields


@dataclass(frozen=True)
class ReferenceRecord:
    ref_finding_id: str
    case_id: str
    series_uid: str
    finding_type: str
    centre_mm: tuple[float, float, float] | None
    diameter_mm: float | None
    geometry: dict[str, Any] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    reader_ids: tuple[str, ...] = ()  # pseudonymous readers whose marks support it
    decision: str = "auto-consensus"  # auto-consensus | arbitrated
    arbitration_id: str = ""
    revision: int = 1
    excluded: bool = False  # adjudicated but not scored (e.g. < 3 mm, non-nodule)
    exclusion_reason: str = ""
    origin: str = "manual"  # manual | model-derived (see the module docstring)
    models: tuple[AssistModelRef, ...] = ()  # sorted, distinct: the models behind its marks
    model_marks: int = 0  # how many of its supporting reader marks came from a model
    long_axis_mm: float | None = None  # measured from `geometry` (see the module docstring)
    short_axis_mm: float | None = None
    mean_diameter_mm: float | None = None
    volume_mm3: float | None = None
    mean_hu: float | None = None
    max_hu: float | None = None
    axes_from: str = ""


@dataclass(frozen=True)
class ReferenceLabelsRecord:
    """How a case's reference answers were reached (the current revision at freeze).

    `decision` is the revision's (auto-consensus | arbitrated | imported); a field an
    arbitrator decided is named in `arbitrated` with its arbitration id, every other
    field of an arbitrated revision was agreed by the readers (auto-consensus)."""

    case_id: str
    revision: int
    decision: str
    derived: dict[str, Any] = field(default_factory=dict)  # referable DR, vertical CDR...
    arbitrated: dict[str, str] = field(default_factory=dict)  # field -> arbitration id

    def field_decision(self, key: str) -> str:
        if key in self.arbitrated:
            return "arbitrated"
        return "imported" if self.decision == "imported" else "auto-consensus"

    @property
    def arbitration_id(self) -> str:
        return ";".join(sorted(set(self.arbitrated.values())))


@dataclass(frozen=True)
class ArbitrationEntry:
    dispute_id: str
    case_id: str
    cluster_id: str
    trigger: str  # existence | type | size | case label
    reader_votes: dict[str, Any]
    arbitrator_pseudo_id: str
    information_shown: str
    decision: str
    reason_code: str = ""
    reason_text: str = ""
    decided_at: str = ""


@dataclass(frozen=True)
class RosterEntry:
    pseudo_id: str
    role: str  # reader | arbitrator
    specialty: str = ""
    title_band: str = ""
    experience_band: str = ""
    site_type: str = ""
    training_date: str = ""


@dataclass(frozen=True)
class QualificationRecord:
    pseudo_id: str
    test_set: str
    date: str
    sensitivity: float | None
    fp_per_case: float | None
    kappa: float | None
    threshold: str
    passed: bool
    attempt: int


@dataclass(frozen=True)
class QcRecord:
    case_id: str
    series_uid: str
    rule: str
    status: str  # pass | warn | fail | overridden
    value: str = ""
    message: str = ""


@dataclass(frozen=True)
class Changelog:
    parent_version: str = ""
    cases_added: tuple[str, ...] = ()
    cases_retired: tuple[tuple[str, str], ...] = ()  # (case_id, reason)
    # (ref_finding_id, change: added | removed | changed, arbitration_id, detail)
    reference_changes: tuple[tuple[str, str, str, str], ...] = ()


@dataclass(frozen=True)
class ModelProposals:
    """What one model version offered on the version's cases and what became of it."""

    model: AssistModelRef
    task: str = ""
    proposals: int = 0  # on the version's (non-retired) cases, every run kept
    cases: int = 0  # cases with at least one of its proposals
    accepted: int = 0  # dispositions recorded in the version's reads
    edited: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class PreAnnotation:
    """Model pre-annotation facts the findings do not carry (the app supplies them).

    `unassisted_cases` is None when the source cannot tell (then only the
    protocol's fraction is stated)."""

    models: tuple[ModelProposals, ...] = ()
    unassisted_cases: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PackageInput:
    """One frozen version, everything its package states."""

    dataset_id: str  # the project's slug
    version: str  # MAJOR.MINOR.PATCH
    title: str
    description: str
    frozen_at: str
    modality: str
    body_part: str
    tool_version: str  # "RefSet x.y.z"
    protocol: dict[str, Any]  # readers per case, phases, blinding, match rule...
    schema: dict[str, Any]  # the label schema as frozen (finding types, attributes)
    deid_profile: dict[str, Any]
    qc_profile: dict[str, Any]
    cases: tuple[CaseRecord, ...]
    reads: tuple[ReadRecord, ...] = ()
    reference: tuple[ReferenceRecord, ...] = ()
    case_labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # adjudicated
    reference_labels: dict[str, ReferenceLabelsRecord] = field(default_factory=dict)
    arbitration_log: tuple[ArbitrationEntry, ...] = ()
    roster: tuple[RosterEntry, ...] = ()
    qualification: tuple[QualificationRecord, ...] = ()
    qc: tuple[QcRecord, ...] = ()
    changelog: Changelog = field(default_factory=Changelog)
    agreement: dict[str, Any] | None = None  # the agreement app's report
    agreement_plots: dict[str, bytes] = field(default_factory=dict)  # name.png -> bytes
    parent_version: str = ""
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)  # site_id -> facts
    inclusion_criteria: str = ""
    exclusion_criteria: str = ""
    clinical_criteria: str = ""
    pre_annotation: PreAnnotation = field(default_factory=PreAnnotation)
    include_images: bool = True  # False: images/images_index.csv only

    @property
    def package_name(self) -> str:
        return f"{self.dataset_id}_v{self.version}"

    def series(self) -> list[tuple[CaseRecord, SeriesRecord]]:
        return [(c, s) for c in self.cases for s in c.series]

    def series_by_uid(self) -> dict[str, SeriesRecord]:
        return {s.series_uid: s for _, s in self.series()}
