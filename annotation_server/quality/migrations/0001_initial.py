"""QcReport moves here from the projects app, state only.

The table already exists (created by projects 0004, extended by 0005) and keeps
its name (db_table = "projects_qcreport"), so nothing in the database changes:
the CreateModel only tells Django's migration state that this app now owns it.
projects 0007 then drops the model from the projects app's state.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("projects", "0006_protocol_size_tolerance"),
    ]

    state_operations = [
        migrations.CreateModel(
            name="QcReport",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("status", models.CharField(max_length=8, verbose_name="status")),
                (
                    "profile_version",
                    models.PositiveIntegerField(default=1, verbose_name="QC profile version"),
                ),
                ("profile", models.JSONField(verbose_name="profile used")),
                ("results", models.JSONField(verbose_name="rule results")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="checked")),
                (
                    "case",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="qc_reports",
                        to="projects.case",
                    ),
                ),
            ],
            options={
                "verbose_name": "QC report",
                "verbose_name_plural": "QC reports",
                "db_table": "projects_qcreport",
                "ordering": ["case", "-created_at"],
            },
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=state_operations, database_operations=[]
        )
    ]
