"""QcReport now belongs to the quality app (quality 0001), state only: its table
keeps its name (projects_qcreport) and its rows."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0006_protocol_size_tolerance"),
        ("quality", "0001_initial"),
    ]

    state_operations = [migrations.DeleteModel(name="QcReport")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=state_operations, database_operations=[]
        )
    ]
