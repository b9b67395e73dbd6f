"""Shared by the read-import tests: a case whose series matches a synthetic CT's
truth (index rows only, no pixels) and the LIDC fixture XML for it."""

from __future__ import annotations

import functools

import fixtures
from annotation_server.imaging.models import Instance, Series, Study
from annotation_server.projects.models import Case
from fixtures.lidc import read_message

SLICES = 12
SEED = 7


@functools.lru_cache(maxsize=4)
def truth(seed: int = SEED, slices: int = SLICES) -> dict:
    _, t = fixtures.build_ct_datasets(slices=slices, seed=seed, matrix=128)
    return t


def lidc_xml(seed: int = SEED, **options) -> bytes:
    return read_message(truth(seed), **options)


def case_for_truth(project, t: dict, code: str = "LIDC0001", **case_fields) -> Case:
    geometry = t["geometry"]
    study = Study.objects.create(
        project=project, study_uid=t["study_instance_uid"], patient_pseudo_id=f"P-{code}"
    )
    series = Series.objects.create(
        study=study,
        series_uid=t["series_instance_uid"],
        modality="CT",
        slice_thickness_mm=geometry["slice_thickness_mm"],
        slice_spacing_mm=geometry["spacing_between_slices_mm"],
        pixel_spacing_mm=geometry["pixel_spacing_mm"],
        orientation=geometry["image_orientation_patient"],
        rows=geometry["rows"],
        columns=geometry["columns"],
        num_instances=len(t["files"]),
    )
    Instance.objects.bulk_create(
        Instance(
            series=series,
            sop_instance_uid=f["sop_instance_uid"],
            sop_class_uid=t["sop_class_uid"],
            instance_number=f["instance_number"],
            slice_index=f["slice_index"],
            position=f["image_position_patient"],
            rows=geometry["rows"],
            columns=geometry["columns"],
            sha256=f"{f['slice_index']:064d}",
            file=f"x/{code}/{f['slice_index']}",
        )
        for f in t["files"]
    )
    fields = {"state": Case.State.READING, "qc_status": Case.QcStatus.PASS, **case_fields}
    return Case.objects.create(project=project, code=code, series=series, **fields)
