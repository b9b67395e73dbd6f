"""A reader logs in, sees their projects, switches language: in a real browser."""

from __future__ import annotations

import pytest

from tests import factories
from tests.browser.helpers import switch_language

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_reader_logs_in_sees_projects_and_switches_language(
    live_server, page, project, tasks, reader_a, artifacts_dir
):
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
    # the browser asked for Chinese: the login page speaks it
    assert page.locator("h1").inner_text() == "登录 RefSet"
    page.fill("#id_username", "reader_a")
    page.fill("#id_password", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    table = page.locator("[data-testid=project-list]")
    assert table.locator("tr[data-project=lung]").count() == 1
    assert "Lung nodule CT" in table.inner_text()
    assert "我的项目" in page.locator("h1").inner_text()
    page.screenshot(path=str(artifacts_dir / "home-zh-hans.png"), full_page=True)

    switch_language(page, "en")
    assert page.locator("h1").inner_text() == "My projects"
    assert "0 of 1 submitted" in page.locator("tr[data-project=lung]").inner_text()
    page.screenshot(path=str(artifacts_dir / "home-en.png"), full_page=True)

    page.click("text=My worklist")
    rows = page.locator("[data-testid=worklist] tbody tr")
    assert rows.count() == 1
    assert tasks["reader_a"].case.code in rows.first.inner_text()
    page.screenshot(path=str(artifacts_dir / "worklist-en.png"), full_page=True)
