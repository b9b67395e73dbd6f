"""Label schemas: the shipped ones are valid, bad ones are refused with reasons,
answers are validated, and a schema in use cannot change."""

from __future__ import annotations

import copy

import pytest

from annotation_server.projects import schema as rules
from annotation_server.projects.label_schemas import shipped
from annotation_server.projects.models import SchemaLockedError
from tests import factories


@pytest.mark.parametrize("item", shipped(), ids=lambda i: i["key"])
def test_shipped_schemas_are_valid_and_loaded_by_migration(item):
    from django.db.migrations.loader import MigrationLoader

    rules.validate_definition(item["definition"])
    # run the data migration's function against a stand-in registry
    loader = MigrationLoader(None)
    migration = loader.get_migration("projects", "0002_shipped_label_schemas")
    created = []

    class Manager:
        @staticmethod
        def get_or_create(**kwargs):
            created.append(kwargs)
            return None, True

    class Apps:
        @staticmethod
        def get_model(app, name):
            return type("M", (), {"objects": Manager})

    migration.operations[0].code(Apps, None)
    loaded = {(c["key"], c["version"]): c["defaults"]["definition"] for c in created}
    assert loaded[(item["key"], item["version"])] == item["definition"]


def test_lung_schema_has_the_nodule_types_and_lidc_characteristics():
    lung = next(i for i in shipped() if i["key"] == "lung-nodule-ct")["definition"]
    nodule = rules.finding_type(lung, "nodule")
    assert set(nodule["geometry"]) == {"contour", "ellipse", "point"}
    attrs = {a["key"]: a for a in nodule["attributes"]}
    assert [o["value"] for o in attrs["nodule_type"]["options"]] == [
        "solid",
        "part_solid",
        "ground_glass",
        "calcified",
        "perifissural",
    ]
    assert (attrs["malignancy"]["min"], attrs["malignancy"]["max"]) == (1, 5)
    assert attrs["long_axis_mm"]["unit"] == "mm"
    for lidc in (
        "subtlety",
        "internal_structure",
        "calcification",
        "sphericity",
        "margin",
        "lobulation",
        "spiculation",
        "texture",
    ):
        assert attrs[lidc]["required"] is False


def test_chest_radiograph_schema_has_case_level_multilabel_and_quality():
    xr = next(i for i in shipped() if i["key"] == "chest-radiograph")["definition"]
    fields = {f["key"]: f for f in xr["case_fields"]}
    values = {o["value"] for o in fields["findings"]["options"]}
    assert {"nodule", "pneumothorax", "pleural_effusion", "consolidation", "cardiomegaly"} <= values
    assert fields["findings"]["multiple"] is True
    assert fields["image_quality"]["kind"] == "ordinal"
    assert all(ft["geometry"] == ["box"] for ft in xr["finding_types"])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["finding_types"][0].update(geometry=["hexagon"]), "unknown geometry"),
        (
            lambda d: d["finding_types"][0]["attributes"].append(
                {
                    "key": "x",
                    "kind": "ordinal",
                    "min": 5,
                    "max": 1,
                    "label": {"en": "x", "zh-hans": "x"},
                }
            ),
            "integer min < max",
        ),
        (lambda d: d["finding_types"][0]["attributes"][0].update(options=[]), "non-empty options"),
        (lambda d: d["finding_types"][0].update(label={"en": "Nodule"}), "zh-hans"),
        (lambda d: d["case_fields"].append(dict(d["case_fields"][0])), "duplicate keys"),
        (lambda d: d["finding_types"][0]["attributes"][1].pop("unit"), "needs a unit"),
        (lambda d: d.update(extra=1), "unknown top-level"),
    ],
)
def test_bad_definitions_are_refused_with_the_reason(mutate, message):
    definition = copy.deepcopy(
        next(i for i in shipped() if i["key"] == "lung-nodule-ct")["definition"]
    )
    assert rules.finding_type(definition, "nodule")
    mutate(definition)
    with pytest.raises(rules.SchemaError) as err:
        rules.validate_definition(definition)
    assert message in str(err.value)


def test_answers_are_validated_per_kind():
    lung = next(i for i in shipped() if i["key"] == "lung-nodule-ct")["definition"]
    ok = {"nodule_type": "part_solid", "long_axis_mm": 6.5, "malignancy": 3, "margin": 2}
    rules.validate_finding(lung, "nodule", "contour", ok, complete=True)
    with pytest.raises(rules.SchemaError) as err:
        rules.validate_finding(
            lung,
            "nodule",
            "box",
            {"nodule_type": "round", "malignancy": 9, "bogus": 1},
            complete=True,
        )
    text = str(err.value)
    for expected in (
        "cannot be drawn as 'box'",
        "'round' is not one of",
        "between 1 and 5",
        "'bogus' is not defined",
        "long_axis_mm is required",
    ):
        assert expected in text
    # drafts may be incomplete but never wrong
    rules.validate_finding(lung, "nodule", "point", {"malignancy": 2}, complete=False)
    with pytest.raises(rules.SchemaError):
        rules.validate_finding(lung, "nodule", "point", {"malignancy": 2.5}, complete=False)


def test_schema_is_immutable_once_a_read_exists(db, reader_a):
    lung = factories.schema("lung-nodule-ct")
    lung.name = "renamed is fine"
    lung.save()
    factories.TaskFactory(case__project__label_schema=lung, reader=reader_a)
    lung.definition = copy.deepcopy(lung.definition)
    lung.definition["case_fields"].pop()
    with pytest.raises(SchemaLockedError):
        lung.save()
