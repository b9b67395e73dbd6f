# Quarantine review in the browser: OCR boxes, redaction, the redacted status.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("imaging", "0005_pacs_site_label"),
    ]

    operations = [
        migrations.AddField(
            model_name="quarantine",
            name="redacted_boxes",
            field=models.JSONField(blank=True, null=True, verbose_name="redacted boxes"),
        ),
        migrations.AddField(
            model_name="quarantine",
            name="redacted_sop_instance_uid",
            field=models.CharField(
                blank=True, max_length=64, verbose_name="SOP instance UID of the redacted copy"
            ),
        ),
        migrations.AddField(
            model_name="quarantine",
            name="text_boxes",
            field=models.JSONField(
                blank=True,
                help_text="Boxes (x, y, width, height in pixels) the OCR suggests to redact.",
                null=True,
                verbose_name="text found in the pixels",
            ),
        ),
        migrations.AlterField(
            model_name="quarantine",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "awaiting review"),
                    ("released", "released into the project"),
                    ("redacted", "redacted, new instance released"),
                    ("rejected", "rejected"),
                ],
                default="pending",
                max_length=16,
                verbose_name="status",
            ),
        ),
    ]
