"""One test per cell of matrix.MATRIX, through the REST API."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from annotation_server.accounts.models import Role
from annotation_server.projects.models import Case
from annotation_server.projects.services import grant_role
from annotation_server.reading import services
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from tests import factories
from tests.permissions.matrix import cells

CASE_LABEL = {"nodules_present": True, "image_quality": 3}


def _complete_read(task: ReadingTask) -> Finding:
    finding = Finding.objects.create(
        task=task,
        finding_type="nodule",
        geometry=factories.nodule_geometry(),
        attributes=factories.complete_nodule_attributes(),
        centre_x_mm=10,
        centre_y_mm=-20,
        centre_z_mm=-100,
    )
    CaseLabel.objects.create(task=task, values=CASE_LABEL)
    ReadingTask.objects.filter(pk=task.pk).update(state=ReadingTask.State.IN_PROGRESS)
    return finding


def scenario(state: str):
    """Build the world for `state`; returns (actors, own task, own finding)."""
    site = factories.SiteFactory(code="S01")
    people = {
        name: factories.UserFactory(username=name, profile__site=site)
        for name in ("reader_own", "reader_other", "arbitrator", "manager", "outsider")
    }
    project = factories.ProjectFactory(slug="matrix")
    if state == "review":
        project.protocol.review_phase = True
        project.protocol.save()
    grant_role(project, people["reader_own"], Role.READER)
    grant_role(project, people["reader_other"], Role.READER)
    grant_role(project, people["arbitrator"], Role.ARBITRATOR)
    grant_role(project, people["manager"], Role.MANAGER)
    case = factories.CaseFactory(project=project)
    own = factories.TaskFactory(case=case, reader=people["reader_own"])
    other = factories.TaskFactory(case=case, reader=people["reader_other"])
    finding = _complete_read(own)
    _complete_read(other)
    if state in ("submitted", "arbitration", "review"):
        services.submit(own, people["reader_own"], expected_version=None)
    if state in ("arbitration", "review"):
        services.submit(other, people["reader_other"], expected_version=None)
    if state == "arbitration":
        Case.objects.filter(pk=case.pk).update(state=Case.State.ARBITRATION)
    if state == "review":
        for name in ("reader_own", "reader_other"):
            factories.TaskFactory(case=case, reader=people[name], phase=2)
    own.refresh_from_db()
    finding.refresh_from_db()
    return people, own, finding


def attempt(action: str, client: APIClient, task: ReadingTask, finding: Finding) -> bool:
    """Perform `action`; True when it was allowed."""
    if action == "view_project":
        return client.get(f"/api/v1/projects/{task.case.project.slug}/").status_code == 200
    if action == "view_case":
        return client.get(f"/api/v1/cases/{task.case_id}/").status_code == 200
    if action == "view_study":
        sibling = factories.SeriesFactory(study=task.case.series.study, modality="CT")
        listing = client.get(f"/api/v1/cases/{task.case_id}/series/")
        listed = listing.status_code == 200 and sibling.pk in {
            s["id"] for s in listing.json()["series"]
        }
        direct = client.get(f"/api/v1/series/{sibling.pk}/").status_code == 200
        assert listed == direct, "the panel and the series API disagree on visibility"
        return direct
    if action == "view_task":
        return client.get(f"/api/v1/reading-tasks/{task.pk}/").status_code == 200
    if action == "view_findings":
        by_task = client.get("/api/v1/findings/", {"task": task.pk}).json()["results"]
        everything = client.get("/api/v1/findings/").json()["results"]
        seen = {f["id"] for f in by_task} | {f["id"] for f in everything}
        direct = client.get(f"/api/v1/findings/{finding.pk}/").status_code == 200
        assert (finding.pk in seen) == direct, "list and detail disagree on visibility"
        return direct
    if action == "view_case_label":
        response = client.get(f"/api/v1/reading-tasks/{task.pk}/case-label/")
        if response.status_code == 200:
            assert response.json()["values"] == CASE_LABEL
            return True
        return False
    if action == "add_finding":
        response = client.post(
            "/api/v1/findings/",
            {
                "task": task.pk,
                "finding_type": "nodule",
                "geometry": factories.nodule_geometry(x=40),
                "attributes": {"malignancy": 2},
            },
            format="json",
        )
        return response.status_code == 201
    if action == "edit_finding":
        response = client.patch(
            f"/api/v1/findings/{finding.pk}/",
            {
                "attributes": factories.complete_nodule_attributes(malignancy=5),
                "version": finding.version,
            },
            format="json",
        )
        allowed = response.status_code == 200
        stored = Finding.objects.get(pk=finding.pk).attributes["malignancy"]
        assert (stored == 5) == allowed, "the response and the database disagree"
        return allowed
    if action == "delete_finding":
        response = client.delete(f"/api/v1/findings/{finding.pk}/?version={finding.version}")
        gone = not Finding.objects.filter(pk=finding.pk).exists()
        assert gone == (response.status_code == 204)
        return gone
    if action == "submit":
        response = client.post(f"/api/v1/reading-tasks/{task.pk}/submit/", {}, format="json")
        task_state = ReadingTask.objects.get(pk=task.pk).state
        if response.status_code == 200:
            assert task_state == ReadingTask.State.SUBMITTED
            return True
        return False
    raise AssertionError(f"unknown action {action}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "state", "actor", "allowed"),
    cells(),
    ids=lambda v: str(v) if not isinstance(v, bool) else ("allow" if v else "deny"),
)
def test_permission_matrix(action, state, actor, allowed):
    people, task, finding = scenario(state)
    client = APIClient()
    client.force_authenticate(people[actor])
    assert attempt(action, client, task, finding) is allowed, (
        f"{actor} {'should' if allowed else 'should not'} be able to {action} in state {state}"
    )


def test_matrix_covers_every_action_in_the_blind_state():
    actions = {action for action, state, _, _ in cells() if state == "reading"}
    assert actions == {
        "view_project",
        "view_case",
        "view_study",
        "view_task",
        "view_findings",
        "view_case_label",
        "add_finding",
        "edit_finding",
        "delete_finding",
        "submit",
    }
