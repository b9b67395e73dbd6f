"""Dataset-version fixtures: a lung project whose cases are read by three
readers and settled for real (settle_case), so a version holds real reads,
clusters, reference revisions and QC reports."""

from __future__ import annotations

import itertools

import pytest

from annotation_server.adjudication import services as adjudication
from annotation_server.imaging.models import Instance
from annotation_server.projects.models import Case
from annotation_server.quality.models import QcReport
from tests import factories
from tests.adjudication.conftest import add_finding, ellipse, submit_all

LABELS = {"nodules_present": True, "image_quality": 3}
_uid = itertools.count(1)


@pytest.fixture
def protocol(project):
    p = project.protocol
    p.auto_accept_min_readers = 3
    p.drop_below_readers = 1
    p.match_rule = "centre_distance"
    p.match_threshold = 5.0
    p.save()
    return p


def make_case(
    project,
    readers,
    code: str,
    *,
    patient: str,
    site=None,
    manufacturer: str = "SIEMENS",
    positive: bool = True,
    settle: bool = True,
    series=None,
    finding_at: tuple[float, float, list] = (200, 200, [5, 6]),
) -> Case:
    """A case with a 12-slice grid (or the real `series` given), three submitted
    reads that agree (one nodule at `finding_at` when `positive`), a QC report,
    and (when `settle`) settled: adjudicated."""
    if series is None:
        series = _grid_series(project, patient, manufacturer)
    case = Case.objects.create(
        project=project, code=code, series=series, site=site, state="reading", qc_status="pass"
    )
    QcReport.objects.create(
        case=case, status="pass", profile={}, results=[{"rule": "slices", "status": "pass"}]
    )
    tasks = {
        f"r{i}": factories.TaskFactory(case=case, reader=reader) for i, reader in enumerate(readers)
    }
    if positive:
        col, row, slices = finding_at
        for i, task in enumerate(tasks.values()):
            add_finding(task, ellipse(col + i, row, slices))
    submit_all(tasks, {n: dict(LABELS, nodules_present=positive) for n in tasks})
    if settle:
        adjudication.settle_case(case.pk)
        case.refresh_from_db()
        assert case.state == Case.State.ADJUDICATED, case.state
    return case


def _grid_series(project, patient: str, manufacturer: str):
    series = factories.SeriesFactory(
        study__project=project,
        study__patient_pseudo_id=patient,
        manufacturer=manufacturer,
        pixel_spacing_mm=[0.7, 0.7],
        orientation=[1, 0, 0, 0, 1, 0],
        rows=512,
        columns=512,
        num_instances=12,
    )
    Instance.objects.bulk_create(
        Instance(
            series=series,
            sop_instance_uid=f"2.25.55{next(_uid)}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            slice_index=i,
            position=[-180.0, -180.0, -100.0 + i],
            rows=512,
            columns=512,
            sha256=f"{series.pk:032d}{i:032d}",
            file=f"x/{series.pk}/{i}",
        )
        for i in range(12)
    )
    return series


@pytest.fixture
def readers(reader_a, reader_b, reader_c):
    return [reader_a, reader_b, reader_c]


@pytest.fixture
def cohort(project, protocol, readers, site):
    """Twelve adjudicated cases of nine patients over two sites and two vendors;
    three patients have two cases each."""
    other = factories.SiteFactory(code="S77", name="第七十七医院")
    cases = []
    for i in range(12):
        patient = f"P{(i if i < 9 else i - 9):03d}"
        cases.append(
            make_case(
                project,
                readers,
                f"L{i:03d}",
                patient=patient,
                site=site if i % 2 else other,
                manufacturer="GE" if i % 3 else "SIEMENS",
                positive=i % 4 != 0,
            )
        )
    return cases
