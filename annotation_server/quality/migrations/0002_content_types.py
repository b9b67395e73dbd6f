"""The content type follows QcReport from the projects app (data only).

A database that had the model under projects has the content type ("projects",
"qcreport"); its permissions (auth), admin log entries and any object
permissions (guardian) point at that row. Relabel it to this app rather than
letting Django create a new one, so those references keep working. A fresh
database has none yet: nothing to do.
"""

from django.db import migrations

MODELS = ("qcreport",)


def relabel(apps, schema_editor, source: str, target: str) -> None:
    content_type = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for model in MODELS:
        if content_type.objects.using(db).filter(app_label=target, model=model).exists():
            continue  # already there (created by a post_migrate since): keep it
        content_type.objects.using(db).filter(app_label=source, model=model).update(
            app_label=target
        )


def forwards(apps, schema_editor):
    relabel(apps, schema_editor, "projects", "quality")


def backwards(apps, schema_editor):
    relabel(apps, schema_editor, "quality", "projects")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("quality", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=True)]
