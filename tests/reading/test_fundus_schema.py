"""The shipped fundus label schema: it validates and is loaded, takes
"ungradable" as a DR grade, and its derived fields (referable DR, vertical
cup-to-disc ratio) are computed on the server and stored with the read."""

from __future__ import annotations

import copy

import pytest

from annotation_server.projects import schema as schema_rules
from annotation_server.projects.label_schemas import shipped
from annotation_server.projects.models import LabelSchema
from annotation_server.reading import derived, services
from annotation_server.reading.models import CaseLabel, ReadingTask
from tests import factories


def fundus_definition() -> dict:
    return copy.deepcopy(next(i for i in shipped() if i["key"] == "fundus-dr")["definition"])


def polygon(points) -> dict:
    return {"kind": "polygon", "shapes": [{"slice_index": 0, "points": points}], "centre_mm": None}


# Disc spans rows 100..310 (210 px), cup rows 140..266 (126 px): vertical CDR 0.6.
DISC = polygon([[200, 100], [305, 200], [200, 310], [95, 200]])
CUP = polygon([[200, 140], [260, 200], [200, 266], [140, 200]])


def test_the_fundus_schema_validates_and_is_bilingual():
    definition = fundus_definition()
    schema_rules.validate_definition(definition)
    grade = next(f for f in definition["case_fields"] if f["key"] == "dr_grade")
    assert (grade["kind"], grade["min"], grade["max"], grade["referable_from"]) == (
        "ordinal",
        0,
        4,
        2,
    )
    assert schema_rules.outside_scale(grade) == ["ungradable"]
    assert grade["outside_scale"][0]["label"]["zh-hans"] == "无法分级"
    types = {t["key"]: t["geometry"] for t in definition["finding_types"]}
    assert types["microaneurysm"] == ["point"]
    assert {"polygon", "box"} <= set(types["haemorrhage"])
    assert {"optic_disc", "optic_cup", "neovascularisation"} <= set(types)
    others = next(f for f in definition["case_fields"] if f["key"] == "other_findings")
    assert others["multiple"] is True
    assert {o["value"] for o in others["options"]} == {
        "amd",
        "glaucoma_suspect",
        "pathological_myopia",
        "rvo",
        "other",
    }


@pytest.mark.django_db
def test_the_fundus_schema_is_loaded_by_the_migrations():
    # The migration's own loader, run again: an earlier transactional test on this
    # worker may have flushed the migrated rows, and the loader is idempotent.
    from importlib import import_module

    from django.apps import apps as django_apps

    migration = import_module("annotation_server.projects.migrations.0012_protocol_grade_rule")
    migration.load_shipped(django_apps, None)
    migration.load_shipped(django_apps, None)
    assert LabelSchema.objects.filter(key="fundus-dr").count() == 1
    stored = LabelSchema.objects.get(key="fundus-dr", version=1)
    assert stored.definition == fundus_definition()


def test_a_dr_grade_is_a_scale_value_or_ungradable():
    fields = fundus_definition()["case_fields"]
    for grade in (0, 4, "ungradable"):
        schema_rules.validate_values(fields, {"dr_grade": grade}, complete=False)
    for bad in (5, -1, "maybe", True, 2.5):
        with pytest.raises(schema_rules.SchemaError):
            schema_rules.validate_values(fields, {"dr_grade": bad}, complete=False)


def test_a_derived_field_needs_a_known_rule_and_a_key_apart_from_the_case_fields():
    definition = fundus_definition()
    definition["derived"][0]["rule"] = "guess"
    definition["derived"][1]["key"] = "dr_grade"
    with pytest.raises(schema_rules.SchemaError) as caught:
        schema_rules.validate_definition(definition)
    text = str(caught.value)
    assert "'guess'" in text and "'dr_grade' is also a case field" in text


@pytest.mark.parametrize(
    ("grade", "dmo", "referable"),
    [
        (0, "absent", False),
        (1, "absent", False),
        (2, "absent", True),
        (4, "absent", True),
        (0, "present", True),
        ("ungradable", "present", True),
        ("ungradable", "absent", None),
        (1, "ungradable", None),
        (None, "absent", None),
    ],
)
def test_referable_dr_is_grade_two_or_more_or_macular_oedema(grade, dmo, referable):
    values = {"dr_grade": grade, "dmo": dmo}
    assert derived.compute(fundus_definition(), values)["referable_dr"] is referable


def test_vertical_cdr_from_the_disc_and_cup_outlines():
    got = derived.compute(fundus_definition(), {}, [("optic_cup", CUP), ("optic_disc", DISC)])
    assert got["vertical_cdr"] == 0.6
    ellipse_disc = {"kind": "ellipse", "shapes": [{"slice_index": 0, "points": [[0, 0], [80, 80]]}]}
    ellipse_cup = {
        "kind": "ellipse",
        "shapes": [{"slice_index": 0, "points": [[20, 28], [60, 52]]}],
    }
    got = derived.compute(
        fundus_definition(), {}, [("optic_disc", ellipse_disc), ("optic_cup", ellipse_cup)]
    )
    assert got["vertical_cdr"] == 0.3
    assert derived.compute(fundus_definition(), {}, [("optic_disc", DISC)])["vertical_cdr"] is None


@pytest.mark.django_db
def test_a_submitted_read_stores_its_referable_status_and_cup_to_disc_ratio(
    project, case, tasks, reader_a
):
    project.label_schema = factories.schema("fundus-dr")
    project.save()
    task = ReadingTask.objects.get(pk=tasks["reader_a"].pk)
    services.save_finding(task, reader_a, finding_type="optic_disc", geometry=DISC)
    services.save_finding(task, reader_a, finding_type="optic_cup", geometry=CUP)
    label = services.save_case_label(
        task, reader_a, {"dr_grade": 1, "dmo": "present"}, expected_version=None
    )
    assert label.derived == {"referable_dr": True, "vertical_cdr": 0.6}
    with pytest.raises(schema_rules.SchemaError):  # derived, never typed by the reader
        services.save_case_label(
            task, reader_a, {"dr_grade": 1, "referable_dr": False}, expected_version=label.version
        )
    label = services.save_case_label(
        task, reader_a, {"dr_grade": 1, "dmo": "absent"}, expected_version=label.version
    )
    assert label.derived["referable_dr"] is False
    services.submit(task, reader_a, expected_version=None)
    stored = CaseLabel.objects.get(task=task)
    assert stored.derived == {"referable_dr": False, "vertical_cdr": 0.6}
    assert ReadingTask.objects.get(pk=task.pk).state == ReadingTask.State.SUBMITTED


def test_macular_oedema_ungradable_is_outside_the_scale_not_an_option():
    definition = fundus_definition()
    dmo = next(f for f in definition["case_fields"] if f["key"] == "dmo")
    assert [o["value"] for o in dmo["options"]] == ["absent", "present"]
    assert schema_rules.outside_scale(dmo) == ["ungradable"]
    assert dmo["outside_scale"][0]["label"]["zh-hans"] == "无法分级"
    fields = definition["case_fields"]
    for value in ("absent", "present", "ungradable"):
        schema_rules.validate_values(fields, {"dr_grade": 1, "dmo": value}, complete=True)
    with pytest.raises(schema_rules.SchemaError) as caught:
        schema_rules.validate_values(fields, {"dr_grade": 1, "dmo": "maybe"}, complete=True)
    assert "dmo" in str(caught.value) and "ungradable" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f["outside_scale"].append({"value": "absent", "label": f["label"]}), "both"),
        (lambda f: f["outside_scale"].append({"value": ""}), "string value"),
        (lambda f: f.update(multiple=True), "multiple-choice"),
    ],
)
def test_an_enum_outside_scale_is_checked(change, message):
    definition = fundus_definition()
    change(next(f for f in definition["case_fields"] if f["key"] == "dmo"))
    with pytest.raises(schema_rules.SchemaError) as caught:
        schema_rules.validate_definition(definition)
    assert message in str(caught.value)


@pytest.mark.django_db
def test_the_migration_moves_a_stored_ungradable_option_off_the_scale():
    import importlib

    from django.apps import apps

    migration = importlib.import_module(
        "annotation_server.projects.migrations.0013_fundus_dmo_outside_scale"
    )
    old = fundus_definition()
    dmo = next(f for f in old["case_fields"] if f["key"] == "dmo")
    dmo["options"] = dmo["options"] + dmo.pop("outside_scale")
    row = LabelSchema.objects.create(key="fundus-dr", version=90, name="old", definition=old)
    other = LabelSchema.objects.create(
        key="other", version=1, name="other", definition=copy.deepcopy(old)
    )
    migration.forward(apps, None)
    row.refresh_from_db()
    other.refresh_from_db()
    assert row.definition == fundus_definition()
    assert other.definition == old  # only the fundus-dr schema is touched
    migration.backward(apps, None)
    row.refresh_from_db()
    assert row.definition == old
