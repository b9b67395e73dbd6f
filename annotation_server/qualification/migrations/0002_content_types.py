"""Content types follow the models from the reading app (data only).

A database that had the models under reading has content types
("reading", "qualificationtest" / "qualificationattempt"); their permissions
(auth) and any object permissions (guardian) point at those rows. Relabel them
to this app rather than letting Django create new ones, so those references
keep working. A fresh database has none yet: nothing to do.
"""

from django.db import migrations

MODELS = ("qualificationtest", "qualificationattempt")


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
    relabel(apps, schema_editor, "reading", "qualification")


def backwards(apps, schema_editor):
    relabel(apps, schema_editor, "qualification", "reading")


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("qualification", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=True)]
