"""The shipped fundus-dr schema's macular oedema: "ungradable" is an answer outside
the scale (outside_scale), no longer a third option of the enum.

The set of answers the field accepts is unchanged (absent, present, ungradable), so
every stored read, reference label and arbitration decision stays valid as it is
and none is rewritten; what changes is how the answer is counted: the agreement
figures leave it out of kappa and report its count (as for the DR grade's
"ungradable"), and the arbitration rule names it "outside_scale". The stored
fundus-dr rows are brought up to the shipped JSON in place (the historical model
has no schema lock: the lock guards answers against a changed definition, and no
answer changes meaning). Frozen versions keep the definition they were frozen
with in their snapshot.
"""

from django.db import migrations

KEY = "fundus-dr"


def _shipped_dmo():
    from annotation_server.projects.label_schemas import shipped

    spec = next(i for i in shipped() if i["key"] == KEY)
    return next(f for f in spec["definition"]["case_fields"] if f["key"] == "dmo")


def forward(apps, schema_editor):
    from annotation_server.projects.schema import validate_definition

    LabelSchema = apps.get_model("projects", "LabelSchema")
    dmo = _shipped_dmo()
    for row in LabelSchema.objects.filter(key=KEY):
        definition = row.definition
        fields = definition.get("case_fields", [])
        for i, field in enumerate(fields):
            options = [o.get("value") for o in field.get("options", [])]
            if field.get("key") == "dmo" and "ungradable" in options:
                fields[i] = {
                    **field,
                    "options": dmo["options"],
                    "outside_scale": dmo["outside_scale"],
                }
        validate_definition(definition)
        row.definition = definition
        row.save(update_fields=["definition"])


def backward(apps, schema_editor):
    LabelSchema = apps.get_model("projects", "LabelSchema")
    for row in LabelSchema.objects.filter(key=KEY):
        definition = row.definition
        for field in definition.get("case_fields", []):
            if field.get("key") == "dmo" and field.get("outside_scale"):
                field["options"] = list(field["options"]) + list(field.pop("outside_scale"))
        row.definition = definition
        row.save(update_fields=["definition"])


class Migration(migrations.Migration):
    dependencies = [("projects", "0012_protocol_grade_rule")]
    operations = [migrations.RunPython(forward, backward)]
