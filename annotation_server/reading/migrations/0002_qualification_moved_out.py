"""QualificationTest and QualificationAttempt now belong to the qualification app
(qualification 0001), state only: their tables keep their names, and
ReadingTask.attempt keeps its column and constraint, now pointing at
qualification.QualificationAttempt in the migration state."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reading", "0001_initial"),
        ("qualification", "0001_initial"),
    ]

    state_operations = [
        migrations.AlterField(
            model_name="readingtask",
            name="attempt",
            field=models.ForeignKey(
                blank=True,
                help_text="Set for qualification reads.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="tasks",
                to="qualification.qualificationattempt",
            ),
        ),
        migrations.DeleteModel(name="QualificationAttempt"),
        migrations.DeleteModel(name="QualificationTest"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=state_operations, database_operations=[]
        )
    ]
