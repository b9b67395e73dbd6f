"""Under the Content-Security-Policy the shell's pages still work in a real
browser and the browser refuses nothing: the worklist's N key (a static module
now), the API docs (Swagger UI with its script as a file), the 404 page and the
admin."""

from __future__ import annotations

import pytest

from tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_shell_pages_work_under_the_policy(live_server, page, tasks, reader_a):
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "reader_a")
    page.fill("#id_password", factories.PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/worklist/")
    page.wait_for_load_state("networkidle")
    page.keyboard.press("n")
    page.wait_for_url(f"{live_server.url}/read/{tasks['reader_a'].pk}/")

    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)

    response = page.goto(f"{live_server.url}/no-such-page/")
    assert response.status == 404
    assert page.locator("[data-testid=error-404]").count() == 1

    page.goto(f"{live_server.url}/admin/login/")
    page.wait_for_load_state("networkidle")
    assert not violations, "\n".join(violations)
