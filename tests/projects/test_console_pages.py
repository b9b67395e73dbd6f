"""The manager's console pages (set-up part): who may open them, what each change
does, and the audit event each change leaves."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation_server.accounts.models import Role, UserProfile
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.label_schemas import shipped
from annotation_server.projects.models import LabelSchema, Membership, Project
from annotation_server.projects.permissions import allow_project_creation
from annotation_server.projects.services import grant_role
from tests import factories

pytestmark = pytest.mark.django_db

CONSOLE_PAGES = [
    "projects:project_edit",
    "projects:project_schema",
    "projects:project_qc_profile",
    "projects:project_members",
]


def signed_in(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=user.username, password=factories.PASSWORD)
    return client


def events(action: str, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


def lung_definition() -> dict:
    return next(i for i in shipped() if i["key"] == "lung-nodule-ct")["definition"]


def create_post(**overrides) -> dict:
    data = {
        "project-name": "Head CT bleeds",
        "project-slug": "head-ct",
        "project-description": "",
        "project-task_type": "detection_3d",
        "project-status": "setup",
        "project-modality": "ct",
        "project-body_part": "head",
        "project-deid_clean_descriptors": "on",
        "protocol-readers_per_case": "2",
        "protocol-blind": "on",
        "protocol-match_rule": "centre_distance",
        "protocol-match_threshold": "5",
        "protocol-size_tolerance_mm": "3",
        "protocol-auto_accept_min_readers": "",
        "protocol-auto_accept_same_type": "on",
        "protocol-auto_accept_ordinal_tolerance": "1",
        "protocol-drop_below_readers": "0",
        "protocol-consensus_method": "majority",
        "protocol-arbitration_mode": "single",
        "protocol-prelabel_visibility": "hidden",
        "protocol-prelabel_min_confidence": "0",
        "protocol-unassisted_fraction": "0",
        "protocol-unassisted_seed": "0",
        "protocol-reading_days": "10",
        "schema-source": "existing",
        "schema-existing": str(factories.schema("lung-nodule-ct").pk),
    }
    data.update(overrides)
    return data


@pytest.fixture
def other_manager(db, site):
    other = factories.ProjectFactory(slug="other", name="Other project")
    user = factories.UserFactory(username="other_manager", profile__site=site)
    grant_role(other, user, Role.MANAGER)
    return user


# ------------------------------------------------------------------ permissions


@pytest.mark.parametrize("name", CONSOLE_PAGES)
def test_only_the_projects_managers_open_its_console_pages(
    name, project, manager, reader_a, arbitrator, other_manager, outsider
):
    url = reverse(name, args=[project.slug])
    assert signed_in(manager).get(url).status_code == 200
    for person in (reader_a, arbitrator, other_manager, outsider):
        assert signed_in(person).get(url).status_code == 404, person.username
    assert Client().get(url).status_code == 302  # to the sign-in page


@pytest.mark.parametrize("name", CONSOLE_PAGES)
def test_outsiders_cannot_change_anything_by_post(name, project, reader_a, other_manager):
    url = reverse(name, args=[project.slug])
    before = AuditEvent.objects.count()
    for person in (reader_a, other_manager):
        assert signed_in(person).post(url, {"form": "add"}).status_code == 404
    member_urls = [
        reverse(n, args=[project.slug, reader_a.pk])
        for n in (
            "projects:project_member",
            "projects:project_member_deactivate",
            "projects:project_member_invitation",
        )
    ]
    for url in member_urls:
        assert signed_in(other_manager).post(url, {"roles": ["manager"]}).status_code == 404
        assert signed_in(reader_a).post(url, {"roles": ["manager"]}).status_code == 404
    assert AuditEvent.objects.count() == before
    assert project.memberships.filter(user=reader_a, role=Role.MANAGER).count() == 0


def test_project_list_shows_managed_projects_and_new_button_to_creators(
    project, manager, reader_a, other_manager
):
    page = signed_in(manager).get(reverse("projects:project_list"))
    assert page.status_code == 200
    assert b'data-project="lung"' in page.content
    assert b'data-testid="new-project"' not in page.content  # no creator permission yet
    assert signed_in(reader_a).get(reverse("projects:project_create")).status_code == 403
    allow_project_creation(manager)
    page = signed_in(manager).get(reverse("projects:project_list"))
    assert b'data-testid="new-project"' in page.content
    assert b'data-testid="nav-project-console"' in page.content
    assert b'data-project="other"' not in page.content
    home = signed_in(reader_a).get(reverse("home"))
    assert b'data-testid="nav-project-console"' not in home.content


# ------------------------------------------------------------------ create / edit


def test_creating_a_project_makes_its_creator_manager_and_is_audited(manager, site):
    allow_project_creation(manager)
    client = signed_in(manager)
    response = client.post(
        reverse("projects:project_create"), create_post(**{"project-sites": [site.pk]})
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    project = Project.objects.get(slug="head-ct")
    assert response["Location"] == reverse("projects:project_members", args=["head-ct"])
    assert (project.modality, project.body_part) == ("CT", "HEAD")
    assert list(project.sites.values_list("code", flat=True)) == ["S01"]
    assert project.protocol.readers_per_case == 2 and project.protocol.reading_days == 10
    assert project.deid_shift_dates is False
    assert Membership.objects.filter(project=project, user=manager, role=Role.MANAGER).exists()
    (created,) = events("project.created", project_id=project.pk)
    assert created.actor_id == manager.pk
    assert events("project.role_granted", project_id=project.pk)[0].data["role"] == "manager"
    assert (
        signed_in(manager).get(reverse("projects:project_edit", args=["head-ct"])).status_code
        == 200
    )


def test_creating_with_an_uploaded_schema_stores_a_new_schema(manager):
    allow_project_creation(manager)
    upload = io.BytesIO(
        json.dumps(
            {"key": "head-bleed", "name": "Head bleed", "definition": lung_definition()}
        ).encode()
    )
    upload.name = "head.json"
    response = signed_in(manager).post(
        reverse("projects:project_create"),
        create_post(**{"schema-source": "upload", "schema-file": upload}),
    )
    assert response.status_code == 302
    project = Project.objects.get(slug="head-ct")
    assert (project.label_schema.key, project.label_schema.version) == ("head-bleed", 1)
    assert events("label_schema.created")[-1].data["key"] == "head-bleed"


def test_schema_upload_errors_are_shown_per_place_and_nothing_is_created(manager):
    allow_project_creation(manager)
    definition = lung_definition()
    definition["finding_types"][0]["label"] = {"en": "Nodule"}  # no zh-hans
    definition["finding_types"][0]["geometry"] = ["blob"]
    upload = io.BytesIO(json.dumps(definition).encode())
    upload.name = "bad.json"
    response = signed_in(manager).post(
        reverse("projects:project_create"),
        create_post(
            **{
                "schema-source": "upload",
                "schema-file": upload,
                "schema-key": "bad",
                "schema-name": "Bad",
            }
        ),
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert text.count('data-testid="schema-error"') == 2
    assert "finding_types[0] (nodule)</th><td>label needs both" in text
    assert "unknown geometry kinds" in text
    assert not Project.objects.filter(slug="head-ct").exists()
    assert not LabelSchema.objects.filter(key="bad").exists()


def test_schema_upload_that_is_not_json_is_an_error_on_the_file_field(manager):
    allow_project_creation(manager)
    upload = io.BytesIO(b"{not json")
    upload.name = "bad.json"
    response = signed_in(manager).post(
        reverse("projects:project_create"),
        create_post(**{"schema-source": "upload", "schema-file": upload}),
    )
    assert response.status_code == 400
    assert 'data-field="schema-file"' in response.content.decode()
    assert "The file is not valid JSON" in response.content.decode()


def test_form_errors_are_shown_on_their_fields(manager):
    allow_project_creation(manager)
    response = signed_in(manager).post(
        reverse("projects:project_create"),
        create_post(
            **{
                "project-slug": "new",
                "protocol-match_rule": "overlap_dice",
                "protocol-match_threshold": "5",
            }
        ),
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "This slug is reserved" in text
    assert "An overlap threshold lies between 0 and 1." in text
    assert not Project.objects.filter(slug="new").exists()


def test_editing_settings_and_protocol_is_audited_with_before_and_after(project, manager):
    data = create_post(
        **{
            "project-name": "Lung nodule CT (phase II)",
            "project-slug": "lung",
            "project-body_part": "chest",
            "protocol-readers_per_case": "4",
            "protocol-review_phase": "on",
            "protocol-arbitration_mode": "two_blind_tiebreak",
        }
    )
    response = signed_in(manager).post(reverse("projects:project_edit", args=["lung"]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    project.refresh_from_db()
    assert project.name == "Lung nodule CT (phase II)"
    assert project.protocol.readers_per_case == 4 and project.protocol.review_phase
    (updated,) = events("project.updated", project_id=project.pk)
    assert updated.data["changed"]["name"] == ["Lung nodule CT", "Lung nodule CT (phase II)"]
    (protocol,) = events("project.protocol_updated", project_id=project.pk)
    assert protocol.data["changed"]["readers_per_case"] == [3, 4]
    assert protocol.data["changed"]["arbitration_mode"] == ["single", "two_blind_tiebreak"]


def test_the_consensus_rule_for_contours_is_chosen_in_the_protocol_form(project, manager):
    page = signed_in(manager).get(reverse("projects:project_edit", args=["lung"]))
    text = page.content.decode()
    assert 'name="protocol-consensus_method"' in text and 'value="staple"' in text
    data = create_post(**{"project-slug": "lung", "protocol-consensus_method": "staple"})
    response = signed_in(manager).post(reverse("projects:project_edit", args=["lung"]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    project.protocol.refresh_from_db()
    assert project.protocol.consensus_method == "staple"
    (protocol,) = events("project.protocol_updated", project_id=project.pk)
    assert protocol.data["changed"]["consensus_method"] == ["majority", "staple"]
    refused = signed_in(manager).post(
        reverse("projects:project_edit", args=["lung"]),
        create_post(**{"project-slug": "lung", "protocol-consensus_method": "mean"}),
    )
    assert refused.status_code == 400
    assert 'has-error" data-field="protocol-consensus_method"' in refused.content.decode()


def test_an_invalid_protocol_is_refused_on_its_field(project, manager):
    data = create_post(
        **{
            "project-slug": "lung",
            "protocol-match_rule": "overlap_iou",
            "protocol-match_threshold": "3",
        }
    )
    response = signed_in(manager).post(reverse("projects:project_edit", args=["lung"]), data)
    assert response.status_code == 400
    assert "An overlap threshold lies between 0 and 1." in response.content.decode()
    assert not events("project.protocol_updated")


# ------------------------------------------------------------------ schema


def test_a_new_schema_version_is_a_new_row_and_the_old_one_is_unchanged(project, manager):
    old = project.label_schema
    definition = lung_definition()
    definition["case_fields"] = [
        {"key": "scan_adequate", "kind": "boolean", "label": {"en": "Good", "zh-hans": "好"}}
    ]
    response = signed_in(manager).post(
        reverse("projects:project_schema", args=["lung"]),
        {
            "form": "version",
            "version-name": "Lung nodule CT",
            "version-definition": json.dumps(definition),
        },
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.label_schema.key == old.key and project.label_schema.version == old.version + 1
    old.refresh_from_db()
    assert "scan_adequate" not in json.dumps(old.definition)
    assert events("project.schema_changed", project_id=project.pk)[0].data["schema_id"] == (
        project.label_schema.pk
    )


def test_a_project_being_read_keeps_its_schema(project, manager, tasks):
    old = project.label_schema
    response = signed_in(manager).post(
        reverse("projects:project_schema", args=["lung"]),
        {
            "form": "version",
            "version-name": "Lung v2",
            "version-definition": json.dumps(lung_definition()),
        },
    )
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.label_schema == old  # a version was stored, the project keeps its own
    assert LabelSchema.objects.filter(key=old.key, version=old.version + 1).exists()
    chest = factories.schema("chest-radiograph")
    response = signed_in(manager).post(
        reverse("projects:project_schema", args=["lung"]),
        {"form": "choice", "schema-source": "existing", "schema-existing": chest.pk},
    )
    assert response.status_code == 409
    project.refresh_from_db()
    assert project.label_schema == old


def test_schema_version_errors_are_listed_by_place(project, manager):
    definition = lung_definition()
    definition["finding_types"][0]["attributes"][0]["kind"] = "colour"
    response = signed_in(manager).post(
        reverse("projects:project_schema", args=["lung"]),
        {"form": "version", "version-name": "x", "version-definition": json.dumps(definition)},
    )
    assert response.status_code == 400
    assert "kind &#x27;colour&#x27; is not one of" in response.content.decode()
    assert 'data-testid="schema-error"' in response.content.decode()


# ------------------------------------------------------------------ QC profile


def _qc_form_data(client, slug):
    page = client.get(reverse("projects:project_qc_profile", args=[slug]))
    form = page.context["form"]
    data = {}
    for name in form.fields:
        value = form[name].value()
        if name.startswith("rule_"):
            if value:
                data[name] = "on"
        elif value is not None:
            data[name] = value
    return data


def test_saving_the_qc_profile_bumps_its_version_and_is_audited(project, manager):
    client = signed_in(manager)
    data = _qc_form_data(client, "lung")
    assert project.qc_profile_version == 1
    data["max_noise_hu"] = 25
    data.pop("rule_ct_metal")
    response = client.post(reverse("projects:project_qc_profile", args=["lung"]), data)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.qc_profile == {"disabled": ["ct_metal"], "max_noise_hu": 25.0}
    assert project.qc_profile_version == 2
    (event,) = events("project.qc_profile_updated", project_id=project.pk)
    assert event.data["version"] == [1, 2]
    # unchanged: no new version, no event
    client.post(
        reverse("projects:project_qc_profile", args=["lung"]), _qc_form_data(client, "lung")
    )
    project.refresh_from_db()
    assert project.qc_profile_version == 2
    assert len(events("project.qc_profile_updated", project_id=project.pk)) == 1


def test_qc_profile_form_refuses_inverted_thresholds(project, manager):
    client = signed_in(manager)
    data = _qc_form_data(client, "lung")
    data["max_slice_thickness_mm"] = 3
    data["fail_slice_thickness_mm"] = 2
    response = client.post(reverse("projects:project_qc_profile", args=["lung"]), data)
    assert response.status_code == 400
    project.refresh_from_db()
    assert project.qc_profile_version == 1


def test_qc_profile_form_shows_the_head_defaults_with_units(manager):
    project = factories.ProjectFactory(slug="head", modality="CT", body_part="HEAD")
    grant_role(project, manager, Role.MANAGER)
    page = signed_in(manager).get(reverse("projects:project_qc_profile", args=["head"]))
    form = page.context["form"]
    assert form.defaults.name == "head-ct"
    assert form["max_slice_thickness_mm"].value() == 5.0
    assert "xr_symmetry" not in form.rule_names  # radiograph rules do not apply to CT
    assert "mm" in page.content.decode() and "HU" in page.content.decode()


# ------------------------------------------------------------------ members


def test_adding_an_existing_person_grants_roles_and_audits(project, manager, site):
    person = factories.UserFactory(username="newreader", profile__site=site)
    response = signed_in(manager).post(
        reverse("projects:project_members", args=["lung"]),
        {"form": "add", "add-user": person.pk, "add-roles": ["reader", "arbitrator"]},
    )
    assert response.status_code == 302
    assert set(project.memberships.filter(user=person).values_list("role", flat=True)) == {
        "reader",
        "arbitrator",
    }
    granted = events("project.role_granted", project_id=project.pk, actor=manager)
    assert {e.data["role"] for e in granted if e.data["user_id"] == person.pk} == {
        "reader",
        "arbitrator",
    }


def test_creating_an_account_with_a_one_time_password(project, manager, site):
    response = signed_in(manager).post(
        reverse("projects:project_members", args=["lung"]),
        {
            "form": "create",
            "new-username": "dr_wang",
            "new-first_name": "伟",
            "new-last_name": "王",
            "new-roles": ["reader"],
            "new-specialty": "神经影像",
            "new-title": "attending",
            "new-years_experience": "7",
            "new-site": site.pk,
            "new-password_mode": "password",
        },
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    password = response.context["password"]
    assert password and password in response.content.decode()
    profile = UserProfile.objects.get(user__username="dr_wang")
    assert (profile.specialty, profile.title, profile.years_experience) == (
        "神经影像",
        "attending",
        7,
    )
    assert profile.pseudonym.startswith("RD")
    assert Client().login(username="dr_wang", password=password)
    (created,) = events("account.created", project_id=project.pk)
    assert created.data == {"username": "dr_wang", "roles": ["reader"], "first_sign_in": "password"}
    assert password not in json.dumps([e.data for e in AuditEvent.objects.all()])


def test_creating_an_account_with_an_invitation_link(project, manager):
    response = signed_in(manager).post(
        reverse("projects:project_members", args=["lung"]),
        {
            "form": "create",
            "new-username": "dr_li",
            "new-roles": ["arbitrator"],
            "new-password_mode": "invitation",
        },
    )
    assert response.status_code == 200
    link = response.context["link"]
    assert "/invitations/" in link
    user = UserProfile.objects.get(user__username="dr_li").user
    assert not user.has_usable_password()
    path = link.split("testserver", 1)[1]
    anonymous = Client()
    assert anonymous.get(path).status_code == 200
    done = anonymous.post(
        path, {"new_password1": "Lung-reading-2026!", "new_password2": "Lung-reading-2026!"}
    )
    assert done.status_code == 302
    assert Client().login(username="dr_li", password="Lung-reading-2026!")
    assert events("account.invitation_accepted")[0].actor_id == user.pk
    assert anonymous.get(path).status_code == 404  # used once


def test_a_taken_username_is_an_error_on_the_field(project, manager, reader_a):
    response = signed_in(manager).post(
        reverse("projects:project_members", args=["lung"]),
        {
            "form": "create",
            "new-username": "READER_A",
            "new-roles": ["reader"],
            "new-password_mode": "password",
        },
    )
    assert response.status_code == 400
    assert "This username is taken" in response.content.decode()


def test_editing_a_members_roles_and_profile_is_audited(project, manager, reader_a, site):
    response = signed_in(manager).post(
        reverse("projects:project_member", args=["lung", reader_a.pk]),
        {
            "roles": ["reader", "arbitrator"],
            "profile-specialty": "胸部影像",
            "profile-title": "chief",
            "profile-years_experience": "21",
            "profile-site": site.pk,
        },
    )
    assert response.status_code == 302
    reader_a.profile.refresh_from_db()
    assert (reader_a.profile.title, reader_a.profile.years_experience) == ("chief", 21)
    (profile_event,) = events("account.profile_updated", project_id=project.pk)
    assert profile_event.data["changed"]["title"] == ["attending", "chief"]
    assert any(
        e.data == {"user_id": reader_a.pk, "role": "arbitrator"}
        for e in events("project.role_granted", project_id=project.pk)
    )


def test_the_last_manager_cannot_be_removed(project, manager):
    response = signed_in(manager).post(
        reverse("projects:project_member_deactivate", args=["lung", manager.pk]), {}
    )
    assert response.status_code == 409
    assert project.memberships.filter(user=manager, role=Role.MANAGER).exists()


def test_deactivating_a_reader_lists_their_open_tasks_for_reassignment(
    project, manager, reader_a, tasks
):
    client = signed_in(manager)
    member_page = client.get(reverse("projects:project_member", args=["lung", reader_a.pk]))
    assert f'data-task="read-{tasks["reader_a"].pk}"' in member_page.content.decode()
    response = client.post(
        reverse("projects:project_member_deactivate", args=["lung", reader_a.pk]),
        {"reason": "left the hospital"},
    )
    assert response.status_code == 302
    assert not project.memberships.filter(user=reader_a).exists()
    (event,) = events("project.member_deactivated", project_id=project.pk)
    assert event.data["roles"] == ["reader"] and event.data["reason"] == "left the hospital"
    assert event.data["open_reads"] == [tasks["reader_a"].pk]
    page = client.get(reverse("projects:project_members", args=["lung"])).content.decode()
    assert "Open tasks of former members" in page
    assert f'data-task="read-{tasks["reader_a"].pk}"' in page
    assert 'data-testid="reassign-form"' in page
    assert reverse("assignments-reassign", args=["lung", tasks["reader_a"].pk]) in page
    # the former member no longer sees the project
    assert signed_in(reader_a).get("/api/v1/projects/lung/").status_code == 404


# ------------------------------------------------------------------ sites


def test_a_dataset_manager_adds_a_site_without_the_admin(project, manager, reader_a):
    from annotation_server.accounts.models import Site

    url = reverse("projects:sites")
    assert signed_in(manager).get(url).status_code == 403  # a project's manager only
    allow_project_creation(manager)
    client = signed_in(manager)
    listing = client.get(reverse("projects:project_list")).content.decode()
    assert f'href="{url}"' in listing
    page = client.get(url)
    assert page.status_code == 200 and 'data-testid="site-form"' in page.content.decode()
    added = client.post(
        url,
        {
            "site-code": "S09",
            "site-name": "第九人民医院",
            "site-site_type": "secondary",
            "site-region": "湖北",
        },
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    site = Site.objects.get(code="S09")
    assert site.name == "第九人民医院" and site.site_type == "secondary"
    (event,) = events("site.created")
    assert event.actor_id == manager.pk and event.data["code"] == "S09"
    assert 'data-site="S09"' in client.get(url).content.decode()
    settings_page = client.get(reverse("projects:project_edit", args=["lung"])).content.decode()
    assert f'value="{site.pk}"' in settings_page  # now one of the project's possible sites

    for code in ("s 9", "S09"):  # not a code; already taken
        refused = client.post(url, {"site-code": code, "site-name": "X", "site-site_type": "other"})
        assert refused.status_code == 400
        assert 'has-error" data-field="site-code"' in refused.content.decode()
    assert Site.objects.filter(name="X").count() == 0
    reader = signed_in(reader_a)
    assert reader.get(url).status_code == 403
    assert reader.post(url, {"site-code": "S10", "site-name": "Y"}).status_code == 403
    assert not Site.objects.filter(code="S10").exists()
    assert Client().get(url).status_code == 302  # to the sign-in page


def test_sites_is_not_a_project_slug(manager):
    allow_project_creation(manager)
    response = signed_in(manager).post(
        reverse("projects:project_create"), create_post(**{"project-slug": "sites"})
    )
    assert response.status_code == 400
    assert "This slug is reserved" in response.content.decode()


def test_a_fundus_projects_qc_profile_shows_and_saves_the_photograph_thresholds(manager):
    project = factories.ProjectFactory(slug="fundus", modality="OP", body_part="EYE")
    grant_role(project, manager, Role.MANAGER)
    client = signed_in(manager)
    page = client.get(reverse("projects:project_qc_profile", args=["fundus"]))
    assert page.status_code == 200
    form = page.context["form"]
    assert form.defaults.name == "fundus-op"
    assert "photo_focus" in form.rule_names and "ct_noise" not in form.rule_names
    text = page.content.decode()
    assert "Photograph pixels" in text and "sharpness: warn below" in text
    data = _qc_form_data(client, "fundus")
    data["photo_min_side_px"] = 1000
    response = client.post(reverse("projects:project_qc_profile", args=["fundus"]), data)
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.qc_profile["photo_min_side_px"] == 1000


def test_the_grade_rule_is_set_in_the_protocol_form_and_audited(project, manager):
    page = signed_in(manager).get(reverse("projects:project_edit", args=["lung"]))
    text = page.content.decode()
    assert 'name="protocol-grade_rule"' in text and 'value="referable"' in text
    assert 'name="protocol-grade_difference"' in text
    data = create_post(
        **{
            "project-slug": "lung",
            "protocol-grade_rule": "difference",
            "protocol-grade_difference": "2",
        }
    )
    response = signed_in(manager).post(reverse("projects:project_edit", args=["lung"]), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    project.protocol.refresh_from_db()
    assert (project.protocol.grade_rule, project.protocol.grade_difference) == ("difference", 2)
    (protocol,) = events("project.protocol_updated", project_id=project.pk)
    assert protocol.data["changed"]["grade_difference"] == [1, 2]

    switched = signed_in(manager).post(
        reverse("projects:project_edit", args=["lung"]),
        create_post(**{"project-slug": "lung", "protocol-grade_rule": "referable"}),
    )
    assert switched.status_code == 302
    project.protocol.refresh_from_db()
    # left out of the post, the difference keeps its setting
    assert (project.protocol.grade_rule, project.protocol.grade_difference) == ("referable", 2)

    for field, bad in (("grade_rule", "majority"), ("grade_difference", "0")):
        refused = signed_in(manager).post(
            reverse("projects:project_edit", args=["lung"]),
            create_post(**{"project-slug": "lung", f"protocol-{field}": bad}),
        )
        assert refused.status_code == 400
        assert f'has-error" data-field="protocol-{field}"' in refused.content.decode()
    project.protocol.refresh_from_db()
    assert (project.protocol.grade_rule, project.protocol.grade_difference) == ("referable", 2)
