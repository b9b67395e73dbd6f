"""Freezing a version: what it keeps, which cases it moves, how it splits them,
and what a correction (a child version) records as changed."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import translation

from annotation_server.adjudication import services as adjudication
from annotation_server.adjudication.models import ArbitrationTask, Cluster, ReferenceFinding
from annotation_server.audit.models import AuditEvent
from annotation_server.datasets import services
from annotation_server.datasets.models import DatasetCase, FrozenError, FrozenRow
from annotation_server.projects.models import Case
from tests.adjudication.test_arbitration import sign_via_api
from tests.datasets.conftest import make_case


@pytest.mark.django_db
def test_freeze_snapshots_every_part_and_moves_the_cases_to_frozen(cohort, project, manager):
    draft = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    assert draft.cases.count() == 12 and not draft.frozen
    version = services.freeze(draft, by=manager, confirm="1.0.0")
    assert version.frozen and version.frozen_by == manager and len(version.content_sha256) == 64
    assert set(Case.objects.filter(project=project).values_list("state", flat=True)) == {"frozen"}
    dc = version.cases.get(case_code="L001")
    snap = dc.snapshot
    assert snap["case"]["code"] == "L001"
    assert len(snap["reads"]) == 3 and all(len(r["findings"]) == 1 for r in snap["reads"])
    assert {r["reader_pseudo_id"] for r in snap["reads"]} == {
        u.profile.pseudonym
        for u in project.memberships.filter(role="reader").values_list
        and [m.user for m in project.memberships.filter(role="reader")]
    }
    assert snap["settlements"][0]["clusters"][0]["verdict"] == "accept"
    (ref,) = snap["reference"]["findings"]
    assert ref["current"] and ref["decision"] == "auto_consensus"
    assert len(ref["supporting"]) == 3
    assert snap["reference"]["labels"][0]["values"]["nodules_present"] is True
    assert snap["qc_reports"][0]["status"] == "pass"
    assert len(snap["series"]["instances"]) == 12 and len(snap["series"]["image_sha256"]) == 64
    assert (
        dc.case_label == "positive" and version.cases.get(case_code="L000").case_label == "negative"
    )
    project_snap = version.snapshot
    assert project_snap["protocol"]["match_rule"] == "centre_distance"
    assert project_snap["schema"]["key"] == "lung-nodule-ct"
    assert {r["role"] for r in project_snap["roster"]} == {"reader", "arbitrator"}
    assert version.changelog["cases_added"] == sorted(c.code for c in cohort)
    tables = set(
        FrozenRow.objects.filter(dataset_version=version).values_list("table_name", flat=True)
    )
    assert {
        "projects_case",
        "reading_readingtask",
        "reading_finding",
        "reading_caselabel",
        "adjudication_settlement",
        "adjudication_cluster",
        "adjudication_cluster_findings",
        "adjudication_referencefinding",
        "adjudication_referencefinding_supporting_findings",
        "adjudication_referencelabels",
        "projects_qcreport",
        "projects_labelschema",
        "imaging_series",
        "imaging_instance",
    } <= tables
    assert AuditEvent.objects.filter(action="dataset.version_frozen").count() == 1


@pytest.mark.django_db
def test_splits_are_patient_level_stratified_and_seeded(cohort, project, manager):
    a = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True, seed=7)
    b = services.create_draft(project, version="2.0.0", by=manager, all_adjudicated=True, seed=7)
    split_a = dict(a.cases.values_list("case_code", "split"))
    assert split_a == dict(b.cases.values_list("case_code", "split"))  # seeded: same draw
    assert services.patient_leaks(a) == {}
    by_patient = {}
    for dc in a.cases.all():
        by_patient.setdefault(dc.patient_pseudo_id, set()).add(dc.split)
    assert all(len(s) == 1 for s in by_patient.values())
    assert len(by_patient) == 9
    assert {"train", "validation", "test"} >= set(split_a.values())
    assert list(split_a.values()).count("train") >= 6


@pytest.mark.django_db
def test_only_adjudicated_cases_are_chosen_and_unknown_ones_are_named(
    project, protocol, readers, manager
):
    make_case(project, readers, "OK1", patient="P1")
    make_case(project, readers, "RD1", patient="P2", settle=False)
    with pytest.raises(services.VersionError, match="RD1"):
        services.create_draft(project, version="1.0.0", by=manager, codes=["OK1", "RD1"])
    draft = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    assert list(draft.cases.values_list("case_code", flat=True)) == ["OK1"]
    with pytest.raises(services.VersionError):
        services.create_draft(project, version="1.0", by=manager, all_adjudicated=True)
    with pytest.raises(services.VersionError):
        services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)


@pytest.mark.django_db
def test_only_managers_draft_or_freeze(cohort, project, manager, reader_a, arbitrator):
    for user in (reader_a, arbitrator):
        with pytest.raises(PermissionDenied):
            services.create_draft(project, version="1.0.0", by=user, all_adjudicated=True)
    draft = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    with pytest.raises(PermissionDenied):
        services.freeze(draft, by=reader_a)
    with pytest.raises(services.VersionError):
        services.freeze(draft, by=manager, confirm="1.0.1")
    services.freeze(draft, by=manager, confirm="1.0.0")
    with pytest.raises(FrozenError):
        services.freeze(draft, by=manager)


@pytest.mark.django_db
def test_a_case_reopened_after_the_draft_blocks_the_freeze(cohort, project, manager):
    draft = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    adjudication.reopen(cohort[1], by=manager, reason="second look")
    with pytest.raises(services.VersionConflict, match="L001"):
        services.freeze(draft, by=manager)


@pytest.mark.django_db
def test_a_correction_is_a_child_version_with_a_computed_changelog(
    cohort, project, protocol, readers, manager, arbitrator, client_for
):
    v1 = services.freeze(
        services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True),
        by=manager,
    )
    # re-arbitrate one case: its reference finding is excluded in round 2
    case = cohort[1]
    cluster = Cluster.objects.get(case=case)
    old = ReferenceFinding.objects.get(case=case, is_current=True)
    adjudication.reopen(case, by=manager, reason="pathology: benign", clusters=[cluster.pk])
    task = ArbitrationTask.objects.get(case=case, round=2)
    sign_via_api(
        client_for(arbitrator),
        task,
        {
            "clusters": {
                str(cluster.pk): {
                    "action": "exclude",
                    "reason_code": "below_size_limit",
                    "reason_text": "< 3 mm",
                }
            },
            "labels": {},
        },
    )
    make_case(project, readers, "NEW1", patient="P900")
    codes = [c.code for c in cohort if c.code != "L005"] + ["NEW1"]
    # the API request above activated its own language on this thread
    with translation.override("en"), pytest.raises(services.VersionError, match="reason"):
        services.create_draft(project, version="1.0.1", by=manager, parent=v1, codes=codes)
    draft = services.create_draft(
        project,
        version="1.0.1",
        by=manager,
        parent=v1,
        codes=codes,
        retire_reason="motion artefact found on review",
    )
    log = services.compute_changelog(draft)
    v2 = services.freeze(draft, by=manager)
    assert v2.changelog == log
    assert log["parent"] == "1.0.0"
    assert log["cases_added"] == ["NEW1"]
    assert log["cases_retired"] == [["L005", "motion artefact found on review"]]
    (change,) = log["reference_changes"]
    assert change["case"] == case.code and change["change"] == "changed"
    assert change["arbitration_id"] == str(task.pk)
    assert (change["old_revision"], change["new_revision"]) == (1, 2)
    assert "status included -> excluded" in change["detail"]
    retired = v2.cases.get(case_code="L005")
    assert retired.retired and retired.snapshot == v1.cases.get(case_code="L005").snapshot
    # splits carried over from the parent
    assert {dc.case_code: dc.split for dc in v2.cases.exclude(case_code="NEW1")} == {
        dc.case_code: dc.split for dc in v1.cases.all()
    }
    # the parent still holds revision 1, untouched
    old.refresh_from_db()
    assert old.status == "included" and not old.is_current
    v1_ref = v1.cases.get(case_code=case.code).snapshot["reference"]["findings"][0]
    assert v1_ref["revision"] == 1 and v1_ref["status"] == "included"
    assert DatasetCase.objects.filter(case=case).count() == 2  # in both versions
