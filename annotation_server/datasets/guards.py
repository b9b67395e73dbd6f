"""What "frozen" means for the live rows, in the code and in the database.

The choice. A frozen version keeps two things: an immutable JSON snapshot of
everything it states (datasets tables: DatasetVersion.snapshot, each
DatasetCase.snapshot), and the live rows that snapshot was read from, listed in
FrozenRow. Both are read-only:

- the version, its cases and its FrozenRow list: no UPDATE, no DELETE, and no
  INSERT of cases or rows into a frozen version;
- the live rows that are history (the tables in FROZEN_TABLES): the case, its
  study, series and instances, every read of every phase with its findings and
  case-level answers, settlements and clusters (with their member findings),
  arbitration tasks with their decisions, every reference-standard revision
  (findings with their supporting findings, and case-level labels), the QC
  reports, the label schema and the submitted qualification attempts. No
  DELETE, and no UPDATE except of the columns in FROZEN_TABLES that carry the
  life cycle, not the content: a case's `state` (a frozen case may be reopened
  for re-arbitration: that is how a correction starts), `qc_status` and the
  optimistic-lock `version`; a reference revision's `is_current` (a
  re-arbitration writes a new revision and retires the old one from "current";
  the old row itself, and the version's record of which revision it used, stay
  as they were).
- The project's configuration (reading protocol, memberships, people's
  profiles) is not history: it may change for the next version, so the version
  keeps it only as its snapshot, which cannot change.

Corrections therefore never touch a frozen version: reopen the case, arbitrate
again (new revisions, new rows), and freeze a new version with the old one as
parent; its changelog names the changed findings and the arbitration tasks.

Enforced three times: PostgreSQL triggers (migration 0004, one function keyed
by the FrozenRow list), SQLite triggers for the embedded demo (installed after
every migrate: `install_sqlite_triggers`, since SQLite drops a table's
triggers when Django rebuilds the table), and these model signal guards, which
raise `FrozenError` (a DomainError: 409 in the API, a page in the browser) with
a translated message before any SQL is sent.
"""

from __future__ import annotations

from django.db import models
from django.db.models.signals import m2m_changed, pre_delete, pre_save

from annotation_server.datasets.models import FrozenError, FrozenRow, frozen_message

# db_table -> columns that may still change on a frozen row
FROZEN_TABLES: dict[str, tuple[str, ...]] = {
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

MESSAGE = "dataset version frozen"  # the prefix of every trigger's error


def is_frozen(model, pk) -> bool:
    if pk is None:
        return False
    return FrozenRow.objects.filter(table_name=model._meta.db_table, row_id=pk).exists()


def frozen_instance_ids(ids) -> set[int]:
    """Which of these imaging instances are rows of a frozen version (read-only).
    The imaging app asks through the hook `imaging.read_only_instances`."""
    return set(
        FrozenRow.objects.filter(table_name="imaging_instance", row_id__in=list(ids)).values_list(
            "row_id", flat=True
        )
    )


def _guarded(sender) -> bool:
    return getattr(sender, "_meta", None) is not None and sender._meta.db_table in FROZEN_TABLES


def refuse_save(sender, instance, raw=False, update_fields=None, **kwargs):
    if raw or not _guarded(sender) or instance._state.adding or instance.pk is None:
        return
    if not is_frozen(sender, instance.pk):
        return
    allowed = set(FROZEN_TABLES[sender._meta.db_table])
    fields = [
        f
        for f in sender._meta.concrete_fields
        if f.column not in allowed
        and not f.primary_key
        and (update_fields is None or f.name in update_fields or f.attname in update_fields)
    ]
    if any(getattr(f, "auto_now", False) for f in fields):
        raise FrozenError(frozen_message())
    stored = (
        sender._base_manager.filter(pk=instance.pk).values(*[f.attname for f in fields]).first()
    )
    if stored is None:
        return
    if any(getattr(instance, f.attname) != stored[f.attname] for f in fields):
        raise FrozenError(frozen_message())


def refuse_delete(sender, instance, **kwargs):
    if _guarded(sender) and is_frozen(sender, instance.pk):
        raise FrozenError(frozen_message())


def refuse_m2m(sender, instance, action, reverse, model, pk_set, **kwargs):
    if action not in ("pre_add", "pre_remove", "pre_clear") or not _guarded(sender):
        return
    through = sender._meta.db_table
    if FrozenRow.objects.filter(
        table_name=type(instance)._meta.db_table, row_id=instance.pk
    ).exists():
        raise FrozenError(frozen_message())
    if action != "pre_add" and pk_set:
        rows = sender.objects.filter(
            **{f"{_fk(sender, type(instance))}": instance.pk},
            **{f"{_fk(sender, model)}__in": pk_set},
        ).values_list("pk", flat=True)
        if FrozenRow.objects.filter(table_name=through, row_id__in=list(rows)).exists():
            raise FrozenError(frozen_message())


def _fk(through, model) -> str:
    for f in through._meta.concrete_fields:
        if isinstance(f, models.ForeignKey) and f.related_model is model:
            return f.attname
    return "pk"


def connect() -> None:
    """Called once from DatasetsConfig.ready()."""
    pre_save.connect(refuse_save, dispatch_uid="datasets.refuse_save")
    pre_delete.connect(refuse_delete, dispatch_uid="datasets.refuse_delete")
    m2m_changed.connect(refuse_m2m, dispatch_uid="datasets.refuse_m2m")


# ----------------------------------------------------------------- triggers

# PostgreSQL: migration 0004 (its SQL written out there). SQLite: below.


def _sqlite_columns(connection, table: str) -> list[str]:
    with connection.cursor() as cursor:
        return [c.name for c in connection.introspection.get_table_description(cursor, table)]


def sqlite_statements(connection) -> list[str]:
    existing = set(connection.introspection.table_names())
    out = []
    raise_ = f"SELECT RAISE(ABORT, '{MESSAGE}: this row is read-only');"
    for table, allowed in FROZEN_TABLES.items():
        if table not in existing or "datasets_frozenrow" not in existing:
            continue
        frozen = (
            f"EXISTS (SELECT 1 FROM datasets_frozenrow f "
            f"WHERE f.table_name = '{table}' AND f.row_id = OLD.id)"
        )
        cols = [c for c in _sqlite_columns(connection, table) if c not in allowed]
        changed = " OR ".join(f'OLD."{c}" IS NOT NEW."{c}"' for c in cols) or "0"
        out += [
            f"DROP TRIGGER IF EXISTS datasets_frozen_upd_{table}",
            f"DROP TRIGGER IF EXISTS datasets_frozen_del_{table}",
            f"CREATE TRIGGER datasets_frozen_upd_{table} BEFORE UPDATE ON {table} "
            f"WHEN ({changed}) AND {frozen} BEGIN {raise_} END",
            f"CREATE TRIGGER datasets_frozen_del_{table} BEFORE DELETE ON {table} "
            f"WHEN {frozen} BEGIN {raise_} END",
        ]
    if "datasets_frozenrow" in existing:
        frozen_version = (
            "EXISTS (SELECT 1 FROM datasets_datasetversion v "
            "WHERE v.id = {}.dataset_version_id AND v.frozen)"
        )
        v_old, v_new = frozen_version.format("OLD"), frozen_version.format("NEW")
        spec = [
            ("version_upd", "BEFORE UPDATE ON datasets_datasetversion", "OLD.frozen"),
            ("version_del", "BEFORE DELETE ON datasets_datasetversion", "OLD.frozen"),
            ("case_ins", "BEFORE INSERT ON datasets_datasetcase", v_new),
            ("case_upd", "BEFORE UPDATE ON datasets_datasetcase", v_old),
            ("case_del", "BEFORE DELETE ON datasets_datasetcase", v_old),
            ("row_ins", "BEFORE INSERT ON datasets_frozenrow", v_new),
            ("row_upd", "BEFORE UPDATE ON datasets_frozenrow", "1"),
            ("row_del", "BEFORE DELETE ON datasets_frozenrow", "1"),
        ]
        for name, when, cond in spec:
            out += [
                f"DROP TRIGGER IF EXISTS datasets_frozen_{name}",
                f"CREATE TRIGGER datasets_frozen_{name} {when} WHEN {cond} BEGIN {raise_} END",
            ]
    return out


def install_sqlite_triggers(connection) -> None:
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        for statement in sqlite_statements(connection):
            cursor.execute(statement)
