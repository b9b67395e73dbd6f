"""A PackageInput built from synthetic CT fixtures, without Django.

Each case is a small synthetic CT series written to disk with its PHI
replaced (as RefSet's de-identification would), read by three readers who
each outline the same two nodules a little differently plus one reader's
extra mark; the reference holds the two nodules and one excluded small one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pydicom

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
    ReferenceRecord,
    RosterEntry,
    SeriesRecord,
)
from fixtures.ct import generate_ct

SCHEMA = {
    "key": "lung-nodule-ct",
    "version": 1,
    "name": "Lung nodule CT",
    "definition": {
        "finding_types": [
            {
                "key": "nodule",
                "label": {"en": "Nodule", "zh-hans": "结节"},
                "geometry": ["contour", "ellipse", "point"],
                "attributes": [
                    {
                        "key": "nodule_type",
                        "kind": "enum",
                        "label": {"en": "Nodule type", "zh-hans": "结节类型"},
                        "options": [{"value": "solid"}, {"value": "ground_glass"}],
                        "required": True,
                    },
                    {"key": "malignancy", "kind": "ordinal", "min": 1, "max": 5},
                    {"key": "subtlety", "kind": "ordinal", "min": 1, "max": 5},
                ],
            },
            {"key": "non_nodule", "label": {"en": "Non-nodule"}, "attributes": []},
        ],
        "case_fields": [{"key": "image_quality", "label": {"en": "Image quality"}}],
    },
}


# R1 reshaped the model's proposal of the first nodule, R2 kept it as proposed,
# R3 drew it by hand: the reference nodule it became is model-derived.
MODEL = AssistModelRef("refset-lung-nodule", "1.0", "ab" * 32)
ORIGIN_OF = {"R1": "model-edited", "R2": "model-accepted", "R3": "manual"}


def _deidentify(folder: Path, truth: dict, pseudo: str) -> list[str]:
    """Replace the fixture's fake PHI in place (as RefSet's de-identification would:
    attributes blanked or replaced, private tags dropped); return what to look for."""
    attributes = truth["phi"]["attributes"]
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for kw in attributes:
            if kw not in ds:
                continue
            vr = ds.data_element(kw).VR
            value = {"DA": "20000101", "TM": "000000"}.get(vr, "")
            setattr(ds, kw, pseudo if kw in ("PatientName", "PatientID") else value)
        ds.remove_private_tags()
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "RefSet test de-identification"
        ds.save_as(path)
    return [v for v in truth["phi"]["strings"] if len(v) >= 8]


def _ellipse(slice_index: int, col: float, row: float, radius: float) -> dict:
    return {"slice_index": slice_index, "points": [[col - radius, row - radius], [col + radius, row + radius]]}  # fmt: skip


def make_input(tmp: Path, cases: int = 2, slices: int = 8, matrix: int = 64, **over) -> tuple[PackageInput, list[str]]:  # fmt: skip
    case_records, reads, refs, arbitration, qc = [], [], [], [], []
    phi: list[str] = []
    for n in range(cases):
        folder = tmp / f"series{n}"
        truth = generate_ct(folder, slices=slices, seed=100 + n, matrix=matrix, nodules=0)
        phi += _deidentify(folder, truth, f"P{n:04d}^")
        files = sorted(folder.glob("*.dcm"))
        instances = []
        for i, path in enumerate(files):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            instances.append(
                InstanceRecord(
                    sop_instance_uid=ds.SOPInstanceUID,
                    sop_class_uid=ds.SOPClassUID,
                    slice_index=i,
                    path=str(path),
                    sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                    position=tuple(float(v) for v in ds.ImagePositionPatient),
                )
            )
        geo = truth["geometry"]
        series = SeriesRecord(
            series_uid=truth["series_instance_uid"],
            study_uid=truth["study_instance_uid"],
            modality="CT",
            frame_of_reference_uid=truth["frame_of_reference_uid"],
            manufacturer=truth["equipment"]["manufacturer"],
            model=truth["equipment"]["model"],
            kvp=truth["equipment"]["kvp"],
            kernel=truth["equipment"]["convolution_kernel"],
            slice_thickness_mm=geo["slice_thickness_mm"],
            pixel_spacing_mm=tuple(geo["pixel_spacing_mm"]),
            orientation=tuple(geo["image_orientation_patient"]),
            rows=geo["rows"],
            columns=geo["columns"],
            instances=tuple(instances),
        )
        case_id = f"C{n:04d}"
        case_records.append(
            CaseRecord(
                case_id=case_id, patient_pseudo_id=f"P{n:04d}", site_id="S01", series=(series,),
                split="train" if n % 2 == 0 else "test", acquisition_year=2021, age_band="60-69",
                sex="M", case_label="positive", qc_status="pass",
            )
        )  # fmt: skip
        mid = slices // 2
        for r, reader in enumerate(("R1", "R2", "R3")):
            findings = [
                FindingRecord(
                    finding_id=f"{case_id}-{reader}-f1",
                    finding_type="nodule",
                    geometry={
                        "kind": "ellipse",
                        "shapes": [_ellipse(s, 20 + r, 24, 4) for s in (mid - 1, mid, mid + 1)],
                    },  # fmt: skip
                    centre_mm=(-8.0 + r * 0.7, -5.0, -150.0),
                    long_axis_mm=5.6 + r * 0.1,
                    short_axis_mm=4.9,
                    mean_diameter_mm=round((5.6 + r * 0.1 + 4.9) / 2, 2),
                    volume_mm3=71.5,
                    mean_hu=-35.2 + r,
                    max_hu=88.0,
                    axes_from="reader" if reader == "R3" else "contour",
                    attributes={"nodule_type": "solid", "malignancy": 3 + (r == 2), "subtlety": 4},
                    source=ORIGIN_OF[reader],
                    model_name=MODEL.name if reader in ("R1", "R2") else "",
                    model_version=MODEL.version if reader in ("R1", "R2") else "",
                    model_sha256=MODEL.weights_sha256 if reader in ("R1", "R2") else "",
                    confidence=0.91 if reader in ("R1", "R2") else None,
                ),
                FindingRecord(
                    finding_id=f"{case_id}-{reader}-f2",
                    finding_type="nodule",
                    geometry={
                        "kind": "contour",
                        "shapes": [
                            {"slice_index": mid, "points": [[40, 40], [46, 40], [46, 45], [40, 45]]}
                        ],
                    },  # fmt: skip
                    centre_mm=(6.3, 8.7, -150.0),
                    long_axis_mm=4.2,
                    attributes={"nodule_type": "ground_glass", "malignancy": 2, "subtlety": 3},
                ),
            ]
            if reader == "R3":
                findings.append(
                    FindingRecord(
                        finding_id=f"{case_id}-R3-f3",
                        finding_type="non_nodule",
                        geometry={
                            "kind": "point",
                            "shapes": [{"slice_index": 1, "points": [[10, 12]]}],
                        },  # fmt: skip
                        centre_mm=(-15.0, -13.6, -153.1),
                    )
                )
            reads.append(
                ReadRecord(
                    read_id=f"{case_id}-{reader}-p1", case_id=case_id, series_uid=series.series_uid,
                    reader_pseudo_id=reader, phase=1, started_at="2026-11-01T08:00:00Z",
                    submitted_at="2026-11-01T08:20:00Z", findings=tuple(findings),
                    case_labels={"image_quality": "good"}, tool_version="RefSet 0.9",
                )
            )  # fmt: skip
        refs += [
            ReferenceRecord(
                ref_finding_id=f"{case_id}-ref1", case_id=case_id, series_uid=series.series_uid,
                finding_type="nodule", centre_mm=(-7.3, -5.0, -150.0), diameter_mm=5.7,
                geometry={"kind": "ellipse", "shapes": [_ellipse(s, 21, 24, 4) for s in (mid - 1, mid, mid + 1)]},
                attributes={"nodule_type": "solid", "malignancy": 3}, reader_ids=("R1", "R2", "R3"),
                origin="model-derived", models=(MODEL,), model_marks=2,
                long_axis_mm=5.66, short_axis_mm=5.66, mean_diameter_mm=5.66, volume_mm3=75.3,
                mean_hu=-30.5, max_hu=91.0, axes_from="contour",
            ),
            ReferenceRecord(
                ref_finding_id=f"{case_id}-ref2", case_id=case_id, series_uid=series.series_uid,
                finding_type="nodule", centre_mm=(6.3, 8.7, -150.0), diameter_mm=4.2,
                geometry={"kind": "contour", "shapes": [{"slice_index": mid, "points": [[40, 40], [46, 40], [46, 45], [40, 45]]}]},
                attributes={"nodule_type": "ground_glass", "malignancy": 2}, reader_ids=("R1", "R2", "R3"),
                decision="arbitrated", arbitration_id=f"A-{case_id}-1",
            ),
            ReferenceRecord(
                ref_finding_id=f"{case_id}-ref3", case_id=case_id, series_uid=series.series_uid,
                finding_type="non_nodule", centre_mm=(-15.0, -13.6, -153.1), diameter_mm=None,
                reader_ids=("R3",), excluded=True, exclusion_reason="non-nodule",
            ),
        ]  # fmt: skip
        arbitration.append(
            ArbitrationEntry(
                dispute_id=f"A-{case_id}-1", case_id=case_id, cluster_id="2", trigger="type",
                reader_votes={"R1": "ground_glass", "R2": "ground_glass", "R3": "part_solid"},
                arbitrator_pseudo_id="A1", information_shown="all reads, unblinded",
                decision="accept", reason_code="majority", reason_text="=SUM(A1) typed by hand",
                decided_at="2026-11-02T09:00:00Z",
            )
        )  # fmt: skip
        qc.append(QcRecord(case_id, series.series_uid, "slice_spacing", "pass", "1.25"))
    inp = PackageInput(
        dataset_id="lung-ct",
        version="1.0.0",
        title="Lung nodule CT",
        description="Synthetic test dataset",
        frozen_at="2026-11-05T10:00:00Z",
        modality="CT",
        body_part="CHEST",
        tool_version="RefSet 0.9",
        protocol={
            "readers_per_case": 3,
            "match_rule": "centre_distance",
            "match_threshold": 5.0,
            "arbitration_mode": "single",
            "review_phase": False,
            "prelabel_visibility": "shown",
            "prelabel_min_confidence": 0.3,
            "unassisted_fraction": 0.25,
            "unassisted_seed": 7,
        },  # fmt: skip
        schema=SCHEMA,
        deid_profile={"name": "PS3.15 Basic Profile", "options": ["retain-longitudinal-dates"]},
        qc_profile={"version": 3, "rules": {"slice_spacing": {"enabled": True}}},
        cases=tuple(case_records),
        reads=tuple(reads),
        reference=tuple(refs),
        case_labels={c.case_id: {"image_quality": "good"} for c in case_records},
        arbitration_log=tuple(arbitration),
        roster=(
            RosterEntry("R1", "reader", "radiology", "attending", "10-19", "tertiary"),
            RosterEntry("R2", "reader", "radiology", "resident", "0-4", "tertiary"),
            RosterEntry("R3", "reader", "radiology", "chief", "20+", "secondary"),
            RosterEntry("A1", "arbitrator", "radiology", "chief", "20+", "tertiary"),
        ),
        qualification=(
            QualificationRecord(
                "R1", "lung-qual-1", "2026-10-01", 0.9, 0.3, 0.8, "sens>=0.8", True, 1
            ),
        ),  # fmt: skip
        qc=tuple(qc),
        changelog=Changelog(cases_added=tuple(c.case_id for c in case_records)),
        sites={"S01": {"site_type": "tertiary"}},
        pre_annotation=PreAnnotation(
            models=(
                ModelProposals(
                    MODEL,
                    task="detection",
                    proposals=2 * cases,
                    cases=cases,
                    accepted=cases,
                    edited=cases,
                    rejected=cases,
                ),
            ),
            unassisted_cases=(),
        ),  # fmt: skip
        **over,
    )
    return inp, phi


FUNDUS_SCHEMA = {
    "key": "fundus-dr",
    "version": 1,
    "definition": {"finding_types": [], "case_fields": []},
}


def fundus_case(folder: Path, n: int, seed: int, eye: str, fmt: str, size: int = 128):
    """One fundus case: a fixtures/fundus.py photograph (camera metadata full of fake
    PHI) written as `fmt` and wrapped as the photo import wraps it (an Ophthalmic
    Photography object, imaging/photo/convert.py), saved under `folder`.
    Returns (CaseRecord, the source file's bytes, its truth)."""
    from annotation_server.imaging.photo.convert import dicom_bytes, photo_to_dicom
    from fixtures import fundus

    rgb, truth = fundus.build_fundus(seed, laterality=eye, size=size, grade=1)
    truth["laterality"] = eye
    source = fundus.encode_photo(rgb, truth, fmt)
    ds = photo_to_dicom(
        source, laterality=eye, patient_id=f"P{seed}", study_id=f"V{seed}",
        sop_uid=f"2.25.{seed}{n}1", series_uid=f"2.25.{seed}{n}2", study_uid=f"2.25.{seed}3",
    )  # fmt: skip
    data = dicom_bytes(ds)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{seed}-{n}.dcm"
    path.write_bytes(data)
    inst = InstanceRecord(
        ds.SOPInstanceUID, ds.SOPClassUID, 0, str(path), hashlib.sha256(data).hexdigest()
    )
    series = SeriesRecord(
        ds.SeriesInstanceUID, ds.StudyInstanceUID, "OP", rows=size, columns=size, instances=(inst,)
    )
    case = CaseRecord(f"F{n:04d}", f"PP{seed}", "S01", (series,), split="train")
    return case, source, truth


def make_fundus_input(folder: Path, specs, size: int = 128, **kw) -> tuple[PackageInput, list]:
    """A fundus version of one photograph per case; `specs` is (seed, eye, format) per
    case. Returns the input and each case's (source bytes, truth)."""
    cases, sources = [], []
    for n, (seed, eye, fmt) in enumerate(specs):
        case, source, truth = fundus_case(folder, n, seed, eye, fmt, size)
        cases.append(case)
        sources.append((source, truth))
    inp = PackageInput(
        dataset_id="fundus", version="1.0.0", title="Fundus", description="",
        frozen_at="2026-01-02T03:04:05+00:00", modality="OP", body_part="EYE",
        tool_version="RefSet 0.1.0", protocol={}, schema=FUNDUS_SCHEMA, deid_profile={},
        qc_profile={}, cases=tuple(cases), **kw,
    )  # fmt: skip
    return inp, sources
