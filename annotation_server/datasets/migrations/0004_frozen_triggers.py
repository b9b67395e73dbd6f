"""Frozen means frozen, in the database: on PostgreSQL, triggers refuse UPDATE
and DELETE of every live row listed in datasets_frozenrow (except the life-cycle
columns named in guards.FROZEN_TABLES), and any change to a frozen version, its
cases and its frozen-row list. See annotation_server/datasets/guards.py for the
rules and why.

The SQL is written out here (not imported), so this migration stays what it
was when applied. SQLite (the embedded demo) gets the same rules as SQLite
triggers after every migrate (DatasetsConfig.ready, post_migrate), because
SQLite drops a table's triggers when Django rebuilds the table.
"""

from django.db import migrations

# db_table -> columns that may still change on a frozen row (guards.FROZEN_TABLES)
TABLES = {
    "projects_case": ("state", "state_changed_at", "qc_status", "version"),
    "imaging_study": (),
    "imaging_series": (),
    "imaging_instance": (),
    "reading_readingtask": (),
    "reading_finding": (),
    "reading_caselabel": (),
    "adjudication_settlement": (),
    "adjudication_cluster": (),
    "adjudication_cluster_findings": (),
    "adjudication_arbitrationtask": (),
    "adjudication_referencefinding": ("is_current",),
    "adjudication_referencefinding_supporting_findings": (),
    "adjudication_referencelabels": ("is_current",),
    "projects_qcreport": (),
    "projects_labelschema": (),
    "reading_qualificationattempt": (),
}
OWN = ("datasets_datasetversion", "datasets_datasetcase", "datasets_frozenrow")

FUNCTIONS = """
CREATE OR REPLACE FUNCTION datasets_refuse_frozen_change() RETURNS trigger AS $$
DECLARE
    allowed text[] := COALESCE(TG_ARGV, ARRAY[]::text[]);
BEGIN
    IF EXISTS (
        SELECT 1 FROM datasets_frozenrow f
        WHERE f.table_name = TG_TABLE_NAME AND f.row_id = OLD.id
    ) THEN
        IF TG_OP = 'DELETE' THEN
            RAISE EXCEPTION 'dataset version frozen: % row % is read-only (DELETE refused)',
                TG_TABLE_NAME, OLD.id;
        END IF;
        IF (to_jsonb(NEW) - allowed) IS DISTINCT FROM (to_jsonb(OLD) - allowed) THEN
            RAISE EXCEPTION 'dataset version frozen: % row % is read-only (UPDATE refused)',
                TG_TABLE_NAME, OLD.id;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION datasets_refuse_version_change() RETURNS trigger AS $$
BEGIN
    IF OLD.frozen THEN
        RAISE EXCEPTION 'dataset version frozen: version % is read-only (% refused)',
            OLD.id, TG_OP;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE OR REPLACE FUNCTION datasets_refuse_member_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND TG_TABLE_NAME = 'datasets_frozenrow' THEN
        RAISE EXCEPTION 'dataset version frozen: frozen rows are read-only (% refused)', TG_OP;
    END IF;
    IF TG_OP <> 'INSERT' AND EXISTS (
        SELECT 1 FROM datasets_datasetversion v WHERE v.id = OLD.dataset_version_id AND v.frozen
    ) THEN
        RAISE EXCEPTION 'dataset version frozen: % of version % is read-only (% refused)',
            TG_TABLE_NAME, OLD.dataset_version_id, TG_OP;
    END IF;
    IF TG_OP <> 'DELETE' AND EXISTS (
        SELECT 1 FROM datasets_datasetversion v WHERE v.id = NEW.dataset_version_id AND v.frozen
    ) THEN
        RAISE EXCEPTION 'dataset version frozen: % of version % is read-only (% refused)',
            TG_TABLE_NAME, NEW.dataset_version_id, TG_OP;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
"""


def _create() -> list[str]:
    out = [FUNCTIONS]
    for table, allowed in TABLES.items():
        args = ", ".join(f"'{c}'" for c in allowed)
        out.append(
            f"DROP TRIGGER IF EXISTS datasets_frozen ON {table}; "
            f"CREATE TRIGGER datasets_frozen BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION datasets_refuse_frozen_change({args});"
        )
    out.append(
        "DROP TRIGGER IF EXISTS datasets_frozen ON datasets_datasetversion; "
        "CREATE TRIGGER datasets_frozen BEFORE UPDATE OR DELETE ON datasets_datasetversion "
        "FOR EACH ROW EXECUTE FUNCTION datasets_refuse_version_change();"
    )
    for table in OWN[1:]:
        out.append(
            f"DROP TRIGGER IF EXISTS datasets_frozen ON {table}; "
            f"CREATE TRIGGER datasets_frozen BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION datasets_refuse_member_change();"
        )
    return out


def _drop() -> list[str]:
    return [f"DROP TRIGGER IF EXISTS datasets_frozen ON {t};" for t in (*TABLES, *OWN)] + [
        "DROP FUNCTION IF EXISTS datasets_refuse_frozen_change();",
        "DROP FUNCTION IF EXISTS datasets_refuse_version_change();",
        "DROP FUNCTION IF EXISTS datasets_refuse_member_change();",
    ]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in _create():
            schema_editor.execute(statement, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in _drop():
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0003_versions_snapshots"),
        ("projects", "0009_protocol_match_rule_pylidc"),
        ("imaging", "0005_pacs_site_label"),
        ("reading", "0003_readingtask_last_heartbeat_at"),
        ("adjudication", "0003_clusters_settlements"),
        ("quality", "0003_case_flags"),
        ("qualification", "0003_attempt_draw"),
    ]
    operations = [migrations.RunPython(forwards, backwards)]
