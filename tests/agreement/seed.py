"""A small project with submitted blind reads, for the agreement app's tests."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories

# Per case: where the true nodules are (x mm) and which readers find them.
PLAN = [
    ({0.0: "abc", 40.0: "ab"}, {"a": 3, "b": 3, "c": 2}),
    ({0.0: "abc"}, {"a": 4, "b": 4, "c": 4}),
    ({20.0: "ac", 60.0: "c"}, {"a": 2, "b": 3, "c": 2}),
    ({10.0: "abc", 30.0: "abc"}, {"a": 5, "b": 4, "c": 5}),
]


def seed_reads(project, readers: dict, *, adjudicated: int = 2) -> list:
    """Cases of `project` read and submitted by readers {"a": user, ...}; the
    first `adjudicated` cases get a reference standard (all planned nodules)."""
    cases = []
    now = timezone.now()
    for i, (nodules, quality) in enumerate(PLAN):
        state = "adjudicated" if i < adjudicated else "reading"
        case = factories.CaseFactory(project=project, code=f"AG{i + 1:03d}", state=state)
        cases.append(case)
        for name, user in readers.items():
            task = ReadingTask.objects.create(
                case=case,
                reader=user,
                phase=1,
                state=ReadingTask.State.SUBMITTED,
                submitted_at=now - timedelta(days=7 * (len(PLAN) - i)),
            )
            for x, who in nodules.items():
                if name not in who:
                    continue
                offset = {"a": 0.0, "b": 1.0, "c": -1.0}[name]
                Finding.objects.create(
                    task=task,
                    finding_type="nodule",
                    geometry=factories.nodule_geometry(x=x + offset),
                    centre_x_mm=x + offset,
                    centre_y_mm=-20.0,
                    centre_z_mm=-100.0,
                    attributes=factories.complete_nodule_attributes(
                        long_axis_mm=6.0 + offset + x / 20,
                        malignancy=3 if name != "c" else 4,
                    ),
                )
            CaseLabel.objects.create(
                task=task, values={"nodules_present": True, "image_quality": quality[name]}
            )
        if state == "adjudicated":
            for x in nodules:
                ReferenceFinding.objects.create(
                    case=case,
                    finding_type="nodule",
                    geometry=factories.nodule_geometry(x=x),
                    centre_x_mm=x,
                    centre_y_mm=-20.0,
                    centre_z_mm=-100.0,
                    attributes=factories.complete_nodule_attributes(),
                    decision=ReferenceFinding.Decision.AUTO_CONSENSUS,
                    decided_at=now,
                )
    return cases
