from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reading", "0004_assist_models_and_proposals"),
    ]

    operations = [
        migrations.AddField(
            model_name="finding",
            name="measurements",
            field=models.JSONField(
                blank=True,
                help_text=(
                    "Computed from the geometry when it is saved: long and short axis, area, "
                    "volume, HU inside (qc.measurements); units under 'units'."
                ),
                null=True,
                verbose_name="measurements",
            ),
        ),
    ]
