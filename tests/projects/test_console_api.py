"""REST of the manager's console (projects/api/console.py), through a real session
login as a browser reaches it: same permissions and audit as the pages."""

from __future__ import annotations

import pytest

from annotation_server.accounts.models import Role
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.label_schemas import shipped
from annotation_server.projects.models import LabelSchema, Project
from annotation_server.projects.permissions import allow_project_creation
from annotation_server.projects.services import grant_role
from tests import factories

pytestmark = pytest.mark.django_db


def lung_definition() -> dict:
    return next(i for i in shipped() if i["key"] == "lung-nodule-ct")["definition"]


def actions(**filters) -> list[str]:
    return list(
        AuditEvent.objects.filter(**filters).order_by("id").values_list("action", flat=True)
    )


@pytest.fixture
def other_manager(db, site):
    other = factories.ProjectFactory(slug="other", name="Other project")
    user = factories.UserFactory(username="other_manager", profile__site=site)
    grant_role(other, user, Role.MANAGER)
    return user


def test_create_needs_the_creators_permission(session_client_for, manager):
    body = {
        "slug": "abdomen",
        "name": "Liver lesions",
        "task_type": "detection_3d",
        "modality": "CT",
        "body_part": "ABDOMEN",
        "label_schema": {"schema_id": factories.schema("lung-nodule-ct").pk},
    }
    client = session_client_for(manager)
    assert client.post("/api/v1/projects/", body, format="json").status_code == 403
    allow_project_creation(manager)
    response = client.post(
        "/api/v1/projects/",
        {**body, "protocol": {"readers_per_case": 2, "review_phase": True}, "sites": ["S01"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["protocol"]["readers_per_case"] == 2
    assert response.json()["sites"] == ["S01"]
    project = Project.objects.get(slug="abdomen")
    assert project.memberships.filter(user=manager, role=Role.MANAGER).exists()
    assert actions(project_id=project.pk)[:2] == ["project.created", "project.role_granted"]


def test_create_with_an_uploaded_definition_reports_schema_errors(session_client_for, manager):
    allow_project_creation(manager)
    definition = lung_definition()
    definition["finding_types"][0]["geometry"] = []
    response = session_client_for(manager).post(
        "/api/v1/projects/",
        {
            "slug": "bad",
            "name": "Bad",
            "task_type": "detection_3d",
            "modality": "CT",
            "label_schema": {"key": "bad", "name": "Bad", "definition": definition},
        },
        format="json",
    )
    assert response.status_code == 400
    errors = response.json()["label_schema"]["definition"]
    assert any("geometry must list at least one kind" in e for e in errors)
    assert not Project.objects.filter(slug="bad").exists()


def test_patch_changes_fields_and_protocol_with_audit(session_client_for, project, manager):
    response = session_client_for(manager).patch(
        "/api/v1/projects/lung/",
        {"body_part": "CHEST", "protocol": {"match_threshold": 7.5, "reading_days": 5}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["protocol"]["match_threshold"] == 7.5
    assert "project.updated" in actions(project_id=project.pk)
    assert "project.protocol_updated" in actions(project_id=project.pk)


def test_patch_sets_the_consensus_rule_for_contours(session_client_for, project, manager):
    api = session_client_for(manager)
    assert api.get("/api/v1/projects/lung/").json()["protocol"]["consensus_method"] == "majority"
    response = api.patch(
        "/api/v1/projects/lung/", {"protocol": {"consensus_method": "staple"}}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["protocol"]["consensus_method"] == "staple"
    event = AuditEvent.objects.get(action="project.protocol_updated", project_id=project.pk)
    assert event.data["changed"]["consensus_method"] == ["majority", "staple"]
    refused = api.patch(
        "/api/v1/projects/lung/", {"protocol": {"consensus_method": "mean"}}, format="json"
    )
    assert refused.status_code == 400
    assert "consensus_method" in str(refused.json())


def test_patch_refuses_an_invalid_protocol(session_client_for, project, manager):
    response = session_client_for(manager).patch(
        "/api/v1/projects/lung/",
        {"protocol": {"match_rule": "overlap_dice", "match_threshold": 4}},
        format="json",
    )
    assert response.status_code == 400
    assert "match_threshold" in response.json()
    project.protocol.refresh_from_db()
    assert project.protocol.match_rule == "centre_distance"


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("patch", "/api/v1/projects/lung/", {"name": "x"}),
        ("get", "/api/v1/projects/lung/qc-profile/", None),
        ("put", "/api/v1/projects/lung/qc-profile/", {"profile": {"max_noise_hu": 1}}),
        ("post", "/api/v1/projects/lung/schema/", {"schema_id": 1}),
        ("get", "/api/v1/projects/lung/members/", None),
        ("post", "/api/v1/projects/lung/members/", {"user": "outsider", "roles": ["manager"]}),
    ],
)
def test_readers_and_other_managers_get_404(
    session_client_for, project, reader_a, arbitrator, other_manager, method, path, body
):
    for person in (reader_a, arbitrator, other_manager):
        client = session_client_for(person)
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 404, (person.username, response.status_code)
    assert not AuditEvent.objects.filter(actor__in=[reader_a, arbitrator, other_manager]).exists()


def test_member_detail_routes_hide_from_outsiders(
    session_client_for, project, reader_a, other_manager
):
    client = session_client_for(other_manager)
    base = f"/api/v1/projects/lung/members/{reader_a.pk}/"
    assert client.get(base).status_code == 404
    assert client.patch(base, {"roles": ["manager"]}, format="json").status_code == 404
    assert client.post(base + "deactivate/", {}, format="json").status_code == 404
    assert project.memberships.filter(user=reader_a).exists()


def test_qc_profile_put_bumps_the_version(session_client_for, project, manager):
    client = session_client_for(manager)
    before = client.get("/api/v1/projects/lung/qc-profile/").json()
    assert before["version"] == 1 and before["defaults"]["name"] == "lung-ct"
    response = client.put(
        "/api/v1/projects/lung/qc-profile/",
        {"profile": {"max_noise_hu": 22, "disabled": ["ct_metal"]}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert response.json()["effective"]["max_noise_hu"] == 22
    assert actions(project_id=project.pk)[-1] == "project.qc_profile_updated"
    bad = client.put("/api/v1/projects/lung/qc-profile/", {"profile": {"noise": 1}}, format="json")
    assert bad.status_code == 400
    project.refresh_from_db()
    assert project.qc_profile_version == 2


def test_schema_endpoint_stores_uploads_as_new_versions(session_client_for, project, manager):
    definition = lung_definition()
    response = session_client_for(manager).post(
        "/api/v1/projects/lung/schema/",
        {"key": "lung-nodule-ct", "name": "Lung nodule CT", "definition": definition},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    project.refresh_from_db()
    assert project.label_schema.version == 2
    assert LabelSchema.objects.filter(key="lung-nodule-ct").count() == 2
    assert "label_schema.created" in actions(project_id=project.pk)


def test_members_api_adds_creates_updates_and_deactivates(
    session_client_for, project, manager, outsider, reader_a, tasks
):
    client = session_client_for(manager)
    listed = client.get("/api/v1/projects/lung/members/").json()
    assert {m["username"] for m in listed} >= {"manager", "reader_a", "arbitrator"}

    added = client.post(
        "/api/v1/projects/lung/members/",
        {"user": "outsider", "roles": ["reader"], "profile": {"specialty": "胸部"}},
        format="json",
    )
    assert added.status_code == 201, added.json()
    assert added.json()["roles"] == ["reader"] and added.json()["specialty"] == "胸部"

    created = client.post(
        "/api/v1/projects/lung/members/",
        {
            "create": True,
            "username": "dr_zhao",
            "roles": ["arbitrator"],
            "first_sign_in": "invitation",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert "/invitations/" in created.json()["invitation_url"]
    assert "password" not in created.json()

    patched = client.patch(
        f"/api/v1/projects/lung/members/{reader_a.pk}/",
        {"roles": ["reader", "arbitrator"], "profile": {"years_experience": 12}},
        format="json",
    )
    assert patched.status_code == 200, patched.json()
    assert sorted(patched.json()["roles"]) == ["arbitrator", "reader"]
    assert patched.json()["open_reads"][0]["id"] == tasks["reader_a"].pk

    gone = client.post(
        f"/api/v1/projects/lung/members/{reader_a.pk}/deactivate/",
        {"reason": "moved"},
        format="json",
    )
    assert gone.status_code == 200
    assert gone.json()["open_reads"] == [{"id": tasks["reader_a"].pk, "case": "C0001"}]
    assert not project.memberships.filter(user=reader_a).exists()
    logged = actions(project_id=project.pk, actor=manager)
    for action in (
        "project.role_granted",
        "account.created",
        "account.profile_updated",
        "project.role_revoked",
        "project.member_deactivated",
    ):
        assert action in logged, action


def test_a_new_invitation_only_for_people_without_a_password(
    session_client_for, project, manager, reader_a
):
    client = session_client_for(manager)
    refused = client.post(f"/api/v1/projects/lung/members/{reader_a.pk}/invitation/")
    assert refused.status_code == 409
    client.post(
        "/api/v1/projects/lung/members/",
        {"create": True, "username": "dr_sun", "roles": ["reader"]},
        format="json",
    )
    from django.contrib.auth import get_user_model

    sun = get_user_model().objects.get(username="dr_sun")
    again = client.post(f"/api/v1/projects/lung/members/{sun.pk}/invitation/")
    assert again.status_code == 200 and "/invitations/" in again.json()["invitation_url"]
    assert "account.invitation_issued" in actions(project_id=project.pk)


def test_label_schemas_are_listed(session_client_for, manager):
    factories.schema("lung-nodule-ct")
    response = session_client_for(manager).get("/api/v1/label-schemas/")
    assert response.status_code == 200
    assert "lung-nodule-ct" in {s["key"] for s in response.json()["results"]}


def test_the_grade_rule_is_read_and_changed_over_rest_with_audit(
    session_client_for, project, manager
):
    client = session_client_for(manager)
    shown = client.get("/api/v1/projects/lung/").json()["protocol"]
    assert (shown["grade_rule"], shown["grade_difference"]) == ("difference", 1)
    response = client.patch(
        "/api/v1/projects/lung/",
        {"protocol": {"grade_rule": "referable", "grade_difference": 3}},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["protocol"]["grade_rule"] == "referable"
    project.protocol.refresh_from_db()
    assert (project.protocol.grade_rule, project.protocol.grade_difference) == ("referable", 3)
    event = AuditEvent.objects.get(action="project.protocol_updated", project_id=project.pk)
    assert event.data["changed"]["grade_rule"] == ["difference", "referable"]

    for bad in ({"grade_rule": "majority"}, {"grade_difference": 0}):
        refused = client.patch("/api/v1/projects/lung/", {"protocol": bad}, format="json")
        assert refused.status_code == 400, bad
        assert next(iter(bad)) in str(refused.json())
    project.protocol.refresh_from_db()
    assert (project.protocol.grade_rule, project.protocol.grade_difference) == ("referable", 3)
