"""Browser tests: the `browser` and `page` fixtures live in tests/conftest.py;
here every browser test's page also fails on a Content-Security-Policy violation."""

import pytest


@pytest.fixture
def page(page):
    """The page of tests/conftest.py, failing the test when the browser refused
    something under the Content-Security-Policy (an inline script, a handler, an
    image or a connection the policy does not allow; tests/conftest.py allows eval
    for Playwright's own waits)."""
    violations: list[str] = []
    page.on(
        "console",
        lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    yield page
    assert not violations, "Content-Security-Policy violations:\n" + "\n".join(violations)
