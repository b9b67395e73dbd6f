"""A dataset manager sets a project up in the browser, in Chinese, without the
Django admin: creates it with an uploaded label schema (a broken upload first,
its problems listed by place), edits its QC profile (version bumped), adds two
readers and creates an arbitrator's account. Screenshots in the artifacts dir."""

from __future__ import annotations

import copy
import json

import pytest

from annotation_server.accounts.models import Role
from annotation_server.audit.models import AuditEvent
from annotation_server.projects.label_schemas import shipped
from annotation_server.projects.models import Project
from annotation_server.projects.permissions import allow_project_creation
from tests import factories
from tests.browser.helpers import login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_manager_sets_up_a_project_in_chinese(
    live_server, page, manager, reader_a, reader_b, site, artifacts_dir, tmp_path
):
    factories.schema("lung-nodule-ct")
    allow_project_creation(manager)
    definition = next(i for i in shipped() if i["key"] == "lung-nodule-ct")["definition"]
    broken = copy.deepcopy(definition)
    broken["finding_types"][0]["label"] = {"en": "Bleed"}
    broken["finding_types"][0]["geometry"] = ["blob"]
    (tmp_path / "broken.json").write_text(json.dumps(broken), encoding="utf-8")
    good = {"key": "head-bleed", "name": "颅内出血", "definition": definition}
    (tmp_path / "head-bleed.json").write_text(
        json.dumps(good, ensure_ascii=False), encoding="utf-8"
    )
    shots = artifacts_dir / "console-setup"
    shots.mkdir(exist_ok=True)

    login(page, live_server, "manager", "zh-hans")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    page.click("[data-testid=nav-project-console]")
    page.wait_for_url(f"{live_server.url}/projects/")
    page.click("[data-testid=new-project]")
    page.wait_for_url(f"{live_server.url}/projects/new/")

    def fill_project():
        page.fill("#id_project-name", "头颅 CT 出血")
        page.fill("#id_project-slug", "head-ct")
        page.select_option("#id_project-task_type", "detection_3d")
        page.fill("#id_project-modality", "CT")
        page.fill("#id_project-body_part", "HEAD")
        page.check(f"input[name=project-sites][value='{site.pk}']")
        page.fill("#id_protocol-readers_per_case", "2")
        page.fill("#id_protocol-reading_days", "7")
        page.check("input[name=schema-source][value=upload]")

    fill_project()
    upload_block = page.locator("[data-show-when='schema-source=upload']")
    assert upload_block.is_visible()  # the module shows the upload inputs for that choice
    page.set_input_files("#id_schema-file", str(tmp_path / "broken.json"))
    page.fill("#id_schema-key", "head-bleed")
    page.fill("#id_schema-name", "颅内出血")
    page.click("[data-testid=save-project]")
    errors = page.locator("[data-testid=schema-error]")
    errors.first.wait_for()
    assert errors.count() == 2
    assert "finding_types[0]" in errors.first.inner_text()
    page.screenshot(path=str(shots / "01-schema-errors.png"), full_page=True)
    assert not Project.objects.filter(slug="head-ct").exists()

    fill_project()
    page.set_input_files("#id_schema-file", str(tmp_path / "head-bleed.json"))
    page.fill("#id_schema-key", "")
    page.fill("#id_schema-name", "")
    page.screenshot(path=str(shots / "02-new-project.png"), full_page=True)
    page.click("[data-testid=save-project]")
    page.wait_for_load_state("networkidle")
    alerts = page.locator(".has-error").evaluate_all("els => els.map(e => e.dataset.field)")
    # fields with errors, if any, say why the page stayed
    assert page.url == f"{live_server.url}/projects/head-ct/members/", alerts
    project = Project.objects.get(slug="head-ct")
    assert (project.label_schema.key, project.body_part) == ("head-bleed", "HEAD")

    # two readers from existing accounts
    for reader in (reader_a, reader_b):
        page.select_option("#id_add-user", str(reader.pk))
        page.check("input[name=add-roles][value=reader]")
        page.click("[data-testid=add-member]")
        page.wait_for_url(f"{live_server.url}/projects/head-ct/members/")
        page.locator(f"tr[data-member={reader.username}]").wait_for()
    # an arbitrator's new account with a one-time password
    page.fill("#id_new-username", "dr_chen")
    page.fill("#id_new-last_name", "陈")
    page.check("input[name=new-roles][value=arbitrator]")
    page.fill("#id_new-specialty", "神经影像")
    page.select_option("#id_new-title", "chief")
    page.fill("#id_new-years_experience", "22")
    page.check("input[name=new-password_mode][value=password]")
    page.click("[data-testid=create-account]")
    secret = page.locator("[data-testid=one-time-password]")
    secret.wait_for()
    password = secret.inner_text().strip()
    assert len(password) >= 12
    page.screenshot(path=str(shots / "03-one-time-password.png"), full_page=True)
    page.click("[data-testid=back-to-members]")
    page.locator("tr[data-member=dr_chen]").wait_for()
    page.screenshot(path=str(shots / "04-members.png"), full_page=True)

    roles = set(project.memberships.values_list("user__username", "role"))
    assert roles == {
        ("manager", Role.MANAGER),
        ("reader_a", Role.READER),
        ("reader_b", Role.READER),
        ("dr_chen", Role.ARBITRATOR),
    }

    # the QC profile: head CT defaults, one threshold changed, one rule off
    page.click("[data-testid=tab-qc]")
    page.wait_for_url(f"{live_server.url}/projects/head-ct/qc-profile/")
    assert page.input_value("#id_max_slice_thickness_mm") == "5.0"  # head defaults, not chest
    page.fill("#id_max_noise_hu", "35")
    page.uncheck("#id_rule_ct_metal")
    page.click("[data-testid=save-qc-profile]")
    page.wait_for_url(f"{live_server.url}/projects/head-ct/qc-profile/")
    assert "2" in page.locator("[data-testid=qc-profile-version]").inner_text()
    page.screenshot(path=str(shots / "05-qc-profile.png"), full_page=True)
    project.refresh_from_db()
    assert project.qc_profile_version == 2
    assert project.qc_profile == {"disabled": ["ct_metal"], "max_noise_hu": 35.0}

    logged = set(AuditEvent.objects.filter(project_id=project.pk).values_list("action", flat=True))
    assert {
        "project.created",
        "project.role_granted",
        "account.created",
        "project.qc_profile_updated",
    } <= logged
