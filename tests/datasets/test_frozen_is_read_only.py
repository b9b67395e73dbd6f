"""Frozen means frozen: every row that went into a version refuses change
through the ORM (model guards: FrozenError), through bulk updates and raw SQL
(PostgreSQL triggers), and through the API; the life-cycle columns that a
correction needs (a case's state, a reference revision's is_current) still move."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from annotation_server.adjudication import services as adjudication
from annotation_server.adjudication.models import (
    ArbitrationTask,
    Cluster,
    ReferenceFinding,
    ReferenceLabels,
    Settlement,
)
from annotation_server.datasets import services
from annotation_server.datasets.guards import FROZEN_TABLES
from annotation_server.datasets.models import DatasetCase, DatasetVersion, FrozenError, FrozenRow
from annotation_server.imaging.models import Instance, Series, Study
from annotation_server.projects.models import Case, LabelSchema, SchemaLockedError
from annotation_server.qualification.models import QualificationAttempt, QualificationTest
from annotation_server.quality.models import QcReport
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests.adjudication.test_arbitration import sign_via_api
from tests.datasets.conftest import make_case


@pytest.fixture
def frozen(project, protocol, readers, manager, arbitrator, client_for):
    """v1.0.0 of three cases, one of them re-arbitrated (so it has arbitration
    tasks and two reference revisions), with a submitted qualification attempt."""
    cases = [make_case(project, readers, f"F{i}", patient=f"PF{i}") for i in range(3)]
    cluster = Cluster.objects.get(case=cases[0])
    adjudication.reopen(cases[0], by=manager, reason="second look", clusters=[cluster.pk])
    sign_via_api(
        client_for(arbitrator),
        ArbitrationTask.objects.get(case=cases[0]),
        {
            "clusters": {str(cluster.pk): {"action": "exclude", "reason_code": "below_size_limit"}},
            "labels": {},
        },
    )
    test = QualificationTest.objects.create(project=project, name="Q1")
    QualificationAttempt.objects.create(
        test=test,
        reader=readers[0],
        number=1,
        submitted_at=timezone.now(),
        sensitivity=0.9,
        fp_per_case=0.5,
        passed=True,
    )
    draft = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    return services.freeze(draft, by=manager)


# table -> an UPDATE that changes a frozen column (placeholder: the row id)
CHANGES = {
    "projects_case": "UPDATE projects_case SET code = code || 'x' WHERE id = %s",
    "imaging_study": "UPDATE imaging_study SET study_uid = study_uid || '9' WHERE id = %s",
    "imaging_series": "UPDATE imaging_series SET manufacturer = 'OTHER' WHERE id = %s",
    "imaging_instance": "UPDATE imaging_instance SET sha256 = 'x' WHERE id = %s",
    "reading_readingtask": "UPDATE reading_readingtask SET state = 'in_progress' WHERE id = %s",
    "reading_finding": "UPDATE reading_finding SET finding_type = 'mass' WHERE id = %s",
    "reading_caselabel": "UPDATE reading_caselabel SET \"values\" = '{}' WHERE id = %s",
    "adjudication_settlement": "UPDATE adjudication_settlement SET outcome = 'x' WHERE id = %s",
    "adjudication_cluster": "UPDATE adjudication_cluster SET verdict = 'drop' WHERE id = %s",
    "adjudication_cluster_findings": (
        "UPDATE adjudication_cluster_findings SET cluster_id = cluster_id + 1000000 WHERE id = %s"
    ),
    "adjudication_arbitrationtask": (
        "UPDATE adjudication_arbitrationtask SET decisions = '{}' WHERE id = %s"
    ),
    "adjudication_referencefinding": (
        "UPDATE adjudication_referencefinding SET status = 'rejected' WHERE id = %s"
    ),
    "adjudication_referencefinding_supporting_findings": (
        "UPDATE adjudication_referencefinding_supporting_findings "
        "SET referencefinding_id = referencefinding_id + 1000000 WHERE id = %s"
    ),
    "adjudication_referencelabels": (
        "UPDATE adjudication_referencelabels SET \"values\" = '{}' WHERE id = %s"
    ),
    "projects_qcreport": "UPDATE projects_qcreport SET status = 'fail' WHERE id = %s",
    "projects_labelschema": "UPDATE projects_labelschema SET name = name || 'x' WHERE id = %s",
    "reading_qualificationattempt": (
        "UPDATE reading_qualificationattempt SET passed = false WHERE id = %s"
    ),
}


def _refused(sql: str, params) -> bool:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
    except DatabaseError as exc:
        assert "dataset version frozen" in str(exc) or "violates" in str(exc), exc
        return True
    return False


@pytest.mark.django_db
def test_raw_sql_cannot_change_or_delete_any_frozen_row(frozen):
    assert set(CHANGES) == set(FROZEN_TABLES)
    for table, sql in CHANGES.items():
        row_id = (
            FrozenRow.objects.filter(dataset_version=frozen, table_name=table)
            .values_list("row_id", flat=True)
            .first()
        )
        assert row_id is not None, f"nothing of {table} was frozen"
        assert _refused(sql, [row_id]), f"UPDATE of {table} went through"
        assert _refused(f"DELETE FROM {table} WHERE id = %s", [row_id]), f"DELETE of {table}"


@pytest.mark.django_db
def test_raw_sql_cannot_change_the_version_its_cases_or_its_frozen_rows(frozen):
    dc = frozen.cases.first()
    row = FrozenRow.objects.filter(dataset_version=frozen).first()
    for sql, params in [
        ("UPDATE datasets_datasetversion SET title = 'x' WHERE id = %s", [frozen.pk]),
        ("UPDATE datasets_datasetversion SET frozen = false WHERE id = %s", [frozen.pk]),
        ("DELETE FROM datasets_datasetversion WHERE id = %s", [frozen.pk]),
        ("UPDATE datasets_datasetcase SET split = 'train' WHERE id = %s", [dc.pk]),
        ("DELETE FROM datasets_datasetcase WHERE id = %s", [dc.pk]),
        (
            "INSERT INTO datasets_datasetcase (dataset_version_id, case_id, case_code, "
            "patient_pseudo_id, site_code, manufacturer, case_label, split, retired, "
            "retired_reason, snapshot, reference_sha256) "
            "VALUES (%s, %s, 'X', '', '', '', '', 'train', false, '', '{}', '')",
            [frozen.pk, dc.case_id],
        ),
        ("UPDATE datasets_frozenrow SET row_id = row_id + 1 WHERE id = %s", [row.pk]),
        ("DELETE FROM datasets_frozenrow WHERE id = %s", [row.pk]),
        (
            "INSERT INTO datasets_frozenrow (dataset_version_id, table_name, row_id) "
            "VALUES (%s, 'reading_finding', 999999)",
            [frozen.pk],
        ),
    ]:
        assert _refused(sql, params), sql
    frozen.refresh_from_db()
    assert frozen.frozen and not frozen.title


@pytest.mark.django_db
def test_the_life_cycle_columns_still_move(frozen):
    case = Case.objects.get(code="F1")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE projects_case SET state = 'arbitration' WHERE id = %s", [case.pk])
    case.refresh_from_db()
    assert case.state == "arbitration"
    ref = ReferenceFinding.objects.filter(case=case).first()
    ReferenceFinding.objects.filter(pk=ref.pk).update(is_current=False)
    ref.refresh_from_db()
    assert not ref.is_current
    # a change of a row that is not in any version is not touched by the rules
    other = QcReport.objects.create(case=case, status="warn", profile={}, results=[])
    QcReport.objects.filter(pk=other.pk).update(status="pass")
    other.delete()


MODELS = [
    Case,
    Study,
    Series,
    Instance,
    ReadingTask,
    Finding,
    CaseLabel,
    Settlement,
    Cluster,
    ArbitrationTask,
    ReferenceFinding,
    ReferenceLabels,
    QcReport,
    LabelSchema,
    QualificationAttempt,
]


def _frozen_instance(model, version):
    ids = FrozenRow.objects.filter(
        dataset_version=version, table_name=model._meta.db_table
    ).values_list("row_id", flat=True)
    return model._base_manager.filter(pk__in=list(ids)).first()


def _change(obj):
    """(attname, a different value) of the first frozen column of obj."""
    allowed = FROZEN_TABLES[obj._meta.db_table]
    for f in obj._meta.concrete_fields:
        if f.primary_key or f.is_relation or f.column in allowed:
            continue
        kind = f.get_internal_type()
        if kind in ("CharField", "TextField", "SlugField"):
            return f.attname, "changed"
        if kind == "JSONField":
            return f.attname, {"changed": True}
        if "Integer" in kind:
            return f.attname, (getattr(obj, f.attname) or 0) + 7
    raise AssertionError(f"no field to change on {obj._meta.label}")


@pytest.mark.django_db
def test_the_orm_refuses_save_delete_and_bulk_update_of_frozen_rows(frozen):
    for model in MODELS:
        obj = _frozen_instance(model, frozen)
        assert obj is not None, model
        attname, value = _change(obj)
        setattr(obj, attname, value)
        # LabelSchema refuses first on its own (in use by reads): also a refusal
        with pytest.raises((FrozenError, SchemaLockedError)), transaction.atomic():
            obj.save()
        # refused by the guard, or earlier by a protecting foreign key
        with pytest.raises((FrozenError, ProtectedError)), transaction.atomic():
            obj.delete()
        with pytest.raises(DatabaseError), transaction.atomic():
            model._base_manager.filter(pk=obj.pk).update(**{attname: value})
        fresh = model._base_manager.get(pk=obj.pk)
        assert getattr(fresh, attname) != value, model


@pytest.mark.django_db
def test_the_orm_refuses_changes_to_the_version_and_its_cases(frozen):
    frozen.title = "renamed"
    with pytest.raises(FrozenError):
        frozen.save()
    with pytest.raises(FrozenError):
        frozen.delete()
    dc = frozen.cases.first()
    dc.split = "train" if dc.split != "train" else "validation"
    with pytest.raises(FrozenError):
        dc.save()
    with pytest.raises(FrozenError):
        dc.delete()
    with pytest.raises(FrozenError):
        FrozenRow.objects.filter(dataset_version=frozen).first().delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        DatasetVersion.objects.filter(pk=frozen.pk).update(title="renamed")
    with pytest.raises(DatabaseError), transaction.atomic():
        DatasetCase.objects.filter(dataset_version=frozen).delete()
    with pytest.raises(FrozenError):
        ReferenceFinding.objects.filter(case__code="F2").first().supporting_findings.clear()


@pytest.mark.django_db
def test_the_api_changes_nothing_of_a_frozen_version(
    frozen, reader_a, arbitrator, manager, session_client_for
):
    finding = _frozen_instance(Finding, frozen)
    reader = session_client_for(finding.task.reader)
    patch = reader.patch(
        f"/api/v1/findings/{finding.pk}/",
        {"finding_type": "mass", "version": finding.version},
        format="json",
    )
    assert patch.status_code in (403, 404, 409), patch.content
    delete = reader.delete(
        f"/api/v1/findings/{finding.pk}/", {"version": finding.version}, format="json"
    )
    assert delete.status_code in (403, 404, 409), delete.content
    task = ArbitrationTask.objects.get(case__code="F0")
    put = session_client_for(arbitrator).put(
        f"/api/v1/arbitration-tasks/{task.pk}/decisions/",
        {"decisions": {"clusters": {}, "labels": {}}, "version": task.version},
        format="json",
    )
    assert put.status_code in (403, 404, 409), put.content
    again = session_client_for(manager).post(
        f"/api/v1/dataset-versions/{frozen.pk}/freeze/", {"confirm": "1.0.0"}, format="json"
    )
    assert again.status_code == 409 and again.json()["code"] == "version_frozen"
    fresh = Finding.objects.get(pk=finding.pk)
    assert fresh.finding_type == finding.finding_type and fresh.version == finding.version
    task.refresh_from_db()
    assert task.decisions != {"clusters": {}, "labels": {}}
    assert DatasetVersion.objects.get(pk=frozen.pk).frozen_at == frozen.frozen_at
