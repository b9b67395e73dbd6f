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


# -- colour fundus photographs (the fundus-dr schema) ------------------------------------

# Per photograph: each reader's DR grade and oedema; the lesions (type, column,
# row, who marks them) and the optic disc (a square of side 120 px at column 400,
# row 300) with each reader's shift in pixels, and the cup (an ellipse, radius
# in px) each reader draws.
FUNDUS_GRADES = {
    "a": [0, 1, 2, 3, 4, "ungradable"],
    "b": [0, 2, 2, 3, 3, "ungradable"],
    "c": [1, 1, 2, 4, 4, 2],
}
FUNDUS_DMO = {
    "a": ["absent", "absent", "absent", "present", "present", "ungradable"],
    "b": ["absent", "absent", "present", "present", "present", "ungradable"],
    "c": ["absent", "absent", "absent", "present", "absent", "absent"],
}
FUNDUS_LESIONS = [
    [],
    [("microaneurysm", 200, 200, "abc"), ("microaneurysm", 600, 250, "a")],
    [("microaneurysm", 300, 500, "abc"), ("haemorrhage", 700, 600, "abc")],
    [
        ("microaneurysm", 250, 700, "ab"),
        ("haemorrhage", 650, 450, "bc"),
        ("hard_exudate", 500, 800, "abc"),
    ],
    [("haemorrhage", 300, 300, "abc"), ("microaneurysm", 800, 200, "bc")],
    [],
]
FUNDUS_SHIFT = {"a": 0, "b": 6, "c": -6}  # px: lesion marks and disc outlines
FUNDUS_CUP = {"a": 30, "b": 33, "c": 27}  # cup radius, px (disc half-height 60)
OP_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.5.1"  # Ophthalmic Photography 8 Bit Image


def fundus_geometry(kind: str, points) -> dict:
    return {
        "kind": kind,
        "shapes": [{"slice_index": 0, "points": [list(p) for p in points]}],
        "centre_mm": None,
    }


def seed_fundus_reads(project, readers: dict) -> list:
    """Turn `project` into a fundus project (modality OP, the shipped fundus-dr
    schema) with six one-image cases read and submitted by readers {"a": user,
    ...}: grades, oedema, lesion marks, disc and cup outlines, and the derived
    fields computed by the server's own rules."""
    from annotation_server.imaging.models import Instance
    from annotation_server.reading import derived

    project.modality = "OP"
    project.task_type = project.TaskType.CLASSIFICATION_2D
    project.label_schema = factories.schema("fundus-dr")
    project.save()
    definition = project.label_schema.definition
    now = timezone.now()
    cases = []
    for i, lesions in enumerate(FUNDUS_LESIONS):
        series = factories.SeriesFactory(
            study__project=project, modality="OP", manufacturer="Topcon"
        )
        Instance.objects.create(
            series=series,
            sop_instance_uid=f"2.25.77{i}",
            sop_class_uid=OP_SOP_CLASS,
            rows=1024,
            columns=1024,
            photometric="RGB",
            sha256=f"{i:064d}",
            file=f"fundus/{i}.dcm",
        )
        case = factories.CaseFactory(project=project, series=series, code=f"FD{i + 1:03d}")
        cases.append(case)
        for name, user in readers.items():
            task = ReadingTask.objects.create(
                case=case,
                reader=user,
                phase=1,
                state=ReadingTask.State.SUBMITTED,
                submitted_at=now - timedelta(days=7 * (len(FUNDUS_LESIONS) - i)),
            )
            shift = FUNDUS_SHIFT[name]
            geometries = []
            for kind, col, row, who in lesions:
                if name not in who:
                    continue
                c, r = col + shift, row + shift / 2
                if kind == "microaneurysm":
                    geometries.append((kind, fundus_geometry("point", [(c, r)])))
                else:
                    box = [(c - 15, r - 15), (c + 15, r + 15)]
                    geometries.append((kind, fundus_geometry("box", box)))
            disc = [(340 + shift, 240), (460 + shift, 240), (460 + shift, 360), (340 + shift, 360)]
            geometries.append(("optic_disc", fundus_geometry("polygon", disc)))
            cup = FUNDUS_CUP[name]
            ellipse = [(400 + shift - cup, 300 - cup), (400 + shift + cup, 300 + cup)]
            geometries.append(("optic_cup", fundus_geometry("ellipse", ellipse)))
            for kind, geometry in geometries:
                Finding.objects.create(task=task, finding_type=kind, geometry=geometry)
            values = {"dr_grade": FUNDUS_GRADES[name][i], "dmo": FUNDUS_DMO[name][i]}
            CaseLabel.objects.create(
                task=task, values=values, derived=derived.compute(definition, values, geometries)
            )
    return cases
