from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0008_project_sites"),
    ]

    operations = [
        migrations.AlterField(
            model_name="readingprotocol",
            name="match_rule",
            field=models.CharField(
                choices=[
                    ("centre_distance", "centre distance ≤ threshold (mm)"),
                    ("centre_in_contour", "centre inside the other's contour"),
                    ("distance_or_inside", "centre distance ≤ threshold or inside"),
                    ("overlap_dice", "Dice overlap ≥ threshold"),
                    ("overlap_iou", "IoU overlap ≥ threshold"),
                    (
                        "pylidc",
                        "LIDC (pylidc): nearest contour points within the slice thickness, "
                        "tightened ×0.9",
                    ),
                ],
                default="centre_distance",
                max_length=32,
                verbose_name="match rule",
            ),
        ),
    ]
