"""A dataset manager imports a folder in the browser and reads the report."""

from __future__ import annotations

import pytest

import fixtures
from annotation_server.imaging.models import Instance
from tests import factories
from tests.browser.helpers import switch_language

pytestmark = [
    pytest.mark.browser,
    pytest.mark.celery,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_manager_uploads_files_and_sees_the_per_file_report(
    live_server, page, project, manager, celery_worker, tmp_path, artifacts_dir
):
    fixtures.generate_ct(tmp_path, slices=4, seed=21, matrix=64)
    (tmp_path / "truth.json").unlink()
    (tmp_path / "readme.txt").write_text("delivery note, not DICOM")
    files = sorted(str(p) for p in tmp_path.iterdir())

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "manager")
    page.fill("#id_password", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    switch_language(page, "en")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.click("[data-testid=import-link]")
    page.wait_for_load_state("networkidle")
    page.set_input_files("#pick-files", files)
    assert "5 file(s) selected" in page.locator("[data-testid=selection]").inner_text(), errors
    page.click("#start")
    report = page.locator("[data-testid=report]")
    report.wait_for(state="visible", timeout=60_000)
    summary = report.locator(".summary")
    assert summary.locator("tr[data-key=imported] td").nth(1).inner_text() == "4"
    assert summary.locator("tr[data-key=rejected] td").nth(1).inner_text() == "1"
    problem = report.locator(".files tbody tr").first.inner_text()
    assert "readme.txt" in problem and "not a DICOM file" in problem
    page.screenshot(path=str(artifacts_dir / "import-report-en.png"), full_page=True)
    assert Instance.objects.filter(series__study__project=project).count() == 4
