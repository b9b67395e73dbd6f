from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("projects", "0007_qcreport_moved_to_quality"),
    ]

    operations = [
        migrations.AlterField(
            model_name="project",
            name="body_part",
            field=models.CharField(
                blank=True,
                help_text="e.g. CHEST, ABDOMEN, HEAD: image QC uses this body part's defaults.",
                max_length=64,
                verbose_name="body part",
            ),
        ),
        migrations.AddField(
            model_name="project",
            name="sites",
            field=models.ManyToManyField(
                blank=True,
                help_text="Institutions that contribute images or readers to this project.",
                related_name="projects",
                to="accounts.site",
                verbose_name="sites",
            ),
        ),
    ]
