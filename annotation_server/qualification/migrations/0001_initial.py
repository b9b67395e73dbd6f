"""Qualification tests and attempts move here from the reading app, state only.

The tables already exist (created by reading 0001) and keep their names
(db_table), so nothing in the database changes: the CreateModel operations only
tell Django's migration state that this app now owns them. reading 0002 then
points ReadingTask.attempt here and drops the models from reading's state.
"""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("projects", "0001_initial"),
        ("reading", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    state_operations = [
        migrations.CreateModel(
            name="QualificationTest",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=200, verbose_name="name")),
                (
                    "min_sensitivity",
                    models.FloatField(
                        default=0.85,
                        validators=[
                            django.core.validators.MinValueValidator(0.0),
                            django.core.validators.MaxValueValidator(1.0),
                        ],
                        verbose_name="minimum sensitivity",
                    ),
                ),
                (
                    "max_fp_per_case",
                    models.FloatField(default=1.0, verbose_name="maximum false positives per case"),
                ),
                (
                    "min_kappa",
                    models.FloatField(
                        blank=True,
                        help_text="Empty: not gated.",
                        null=True,
                        verbose_name="minimum attribute kappa",
                    ),
                ),
                (
                    "max_attempts",
                    models.PositiveSmallIntegerField(default=3, verbose_name="attempts allowed"),
                ),
                ("active", models.BooleanField(default=True, verbose_name="active")),
                ("created_at", models.DateTimeField(auto_now_add=True, verbose_name="created")),
                (
                    "cases",
                    models.ManyToManyField(
                        related_name="qualification_tests", to="projects.case", verbose_name="cases"
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="qualification_tests",
                        to="projects.project",
                    ),
                ),
            ],
            options={
                "verbose_name": "qualification test",
                "verbose_name_plural": "qualification tests",
                "db_table": "reading_qualificationtest",
                "ordering": ["project", "name"],
            },
        ),
        migrations.CreateModel(
            name="QualificationAttempt",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveSmallIntegerField(verbose_name="attempt")),
                ("started_at", models.DateTimeField(auto_now_add=True, verbose_name="started")),
                (
                    "submitted_at",
                    models.DateTimeField(blank=True, null=True, verbose_name="submitted"),
                ),
                ("sensitivity", models.FloatField(blank=True, null=True)),
                ("fp_per_case", models.FloatField(blank=True, null=True)),
                ("kappa", models.FloatField(blank=True, null=True)),
                ("passed", models.BooleanField(blank=True, null=True)),
                (
                    "details",
                    models.JSONField(
                        blank=True, default=dict, help_text="Misses and false positives."
                    ),
                ),
                (
                    "reader",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="qualification_attempts",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "test",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="attempts",
                        to="qualification.qualificationtest",
                    ),
                ),
            ],
            options={
                "verbose_name": "qualification attempt",
                "verbose_name_plural": "qualification attempts",
                "db_table": "reading_qualificationattempt",
                "ordering": ["test", "reader", "number"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("test", "reader", "number"), name="qualification_attempt_number"
                    )
                ],
            },
        ),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=state_operations, database_operations=[]
        )
    ]
