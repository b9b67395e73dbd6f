"""Adjudication fixtures: a lung project whose three reads of one case are in,
a second and third arbitrator, and helpers to put findings into reads."""

from __future__ import annotations

import pytest

from annotation_server.accounts.models import Role
from annotation_server.imaging.models import Instance
from annotation_server.projects.services import grant_role
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories

SLICES = 40


@pytest.fixture
def arbitrator_b(db, site):
    return factories.UserFactory(username="arbitrator_b", profile__site=site)


@pytest.fixture
def arbitrator_c(db, site):
    return factories.UserFactory(username="arbitrator_c", profile__site=site)


@pytest.fixture
def grid_case(case):
    """The case's series gets a real grid: 40 axial slices, 0.7 mm pixels, 1 mm apart."""
    series = case.series
    series.pixel_spacing_mm = [0.7, 0.7]
    series.orientation = [1, 0, 0, 0, 1, 0]
    series.rows = series.columns = 512
    series.save()
    Instance.objects.bulk_create(
        Instance(
            series=series,
            sop_instance_uid=f"2.25.77{i}",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            slice_index=i,
            position=[-180.0, -180.0, -100.0 + i],
            rows=512,
            columns=512,
            sha256=f"{i:064d}",
            file=f"x/{i}",
        )
        for i in range(SLICES)
    )
    return case


def ellipse(col: float, row: float, slices, radius: float = 6.0) -> dict:
    return {
        "kind": "ellipse",
        "shapes": [
            {
                "slice_index": s,
                "points": [[col - radius, row - radius], [col + radius, row + radius]],
            }
            for s in slices
        ],
        "centre_mm": [-180.0 + col * 0.7, -180.0 + row * 0.7, -100.0 + sum(slices) / len(slices)],
    }


def add_finding(task: ReadingTask, geometry: dict, **attrs) -> Finding:
    centre = geometry.get("centre_mm") or [None, None, None]
    return Finding.objects.create(
        task=task,
        finding_type="nodule",
        geometry=geometry,
        attributes=factories.complete_nodule_attributes(**attrs),
        centre_x_mm=centre[0],
        centre_y_mm=centre[1],
        centre_z_mm=centre[2],
    )


def submit_all(tasks, labels: dict | None = None) -> None:
    for name, task in tasks.items():
        CaseLabel.objects.update_or_create(
            task=task, defaults={"values": (labels or {}).get(name, {})}
        )
    ReadingTask.objects.filter(pk__in=[t.pk for t in tasks.values()]).update(
        state=ReadingTask.State.SUBMITTED
    )


@pytest.fixture
def protocol(project):
    p = project.protocol
    p.auto_accept_min_readers = 3
    p.drop_below_readers = 1
    p.match_rule = "centre_distance"
    p.match_threshold = 5.0
    p.save()
    return p


@pytest.fixture
def two_blind(protocol, project, arbitrator_b, arbitrator_c):
    protocol.arbitration_mode = "two_blind_tiebreak"
    protocol.save()
    grant_role(project, arbitrator_b, Role.ARBITRATOR)
    grant_role(project, arbitrator_c, Role.ARBITRATOR)
    return protocol
