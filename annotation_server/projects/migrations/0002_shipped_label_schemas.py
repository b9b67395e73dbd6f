"""Load the shipped label schemas (lung nodule CT, chest radiograph) from JSON."""

from django.db import migrations


def load(apps, schema_editor):
    from annotation_server.projects.label_schemas import shipped
    from annotation_server.projects.schema import validate_definition

    LabelSchema = apps.get_model("projects", "LabelSchema")
    for item in shipped():
        validate_definition(item["definition"])
        LabelSchema.objects.get_or_create(
            key=item["key"],
            version=item["version"],
            defaults={"name": item["name"], "definition": item["definition"]},
        )


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
