"""On SQLite (the embedded demo), refuse UPDATE and DELETE on the audit table at
the database level, as 0002 does on PostgreSQL: `QuerySet.update()`/`delete()`
and raw SQL never reach the model's own guard.

SQLite drops a table's triggers with the table, and Django alters a SQLite table
by copying it into a new one: a later migration that alters audit_auditevent
must run `forwards` again after it.
"""

from django.db import migrations

CREATE = [
    """
    CREATE TRIGGER IF NOT EXISTS audit_auditevent_no_update
    BEFORE UPDATE ON audit_auditevent
    BEGIN
        SELECT RAISE(ABORT, 'audit_auditevent is append-only (UPDATE refused)');
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS audit_auditevent_no_delete
    BEFORE DELETE ON audit_auditevent
    BEGIN
        SELECT RAISE(ABORT, 'audit_auditevent is append-only (DELETE refused)');
    END
    """,
]
DROP = [
    "DROP TRIGGER IF EXISTS audit_auditevent_no_update",
    "DROP TRIGGER IF EXISTS audit_auditevent_no_delete",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in CREATE:
            schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for statement in DROP:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]
    operations = [migrations.RunPython(forwards, backwards)]
