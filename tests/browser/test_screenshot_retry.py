"""The session's screenshot retry (tests/conftest.py): a capture Chromium refuses is
taken again; any other error, or a third refusal, still fails the test."""

import pytest
from playwright.sync_api import Error

from tests.conftest import _screenshots_retried


def _page_class(failures: list[str]):
    class FakePage:
        calls = 0
        waits: list[int] = []

        def screenshot(self, **kwargs):
            FakePage.calls += 1
            if failures:
                raise Error(failures.pop(0))
            return b"png"

        def wait_for_timeout(self, ms):
            FakePage.waits.append(ms)

    return FakePage


REFUSED = "Protocol error (Page.captureScreenshot): Unable to capture screenshot"


def test_a_refused_capture_is_taken_again():
    cls = _page_class([REFUSED, REFUSED])
    with _screenshots_retried(page_class=cls):
        assert cls().screenshot(path="x.png") == b"png"
    assert cls.calls == 3 and cls.waits == [250, 500]


def test_a_third_refusal_fails():
    cls = _page_class([REFUSED] * 3)
    with _screenshots_retried(page_class=cls), pytest.raises(Error, match="Unable to capture"):
        cls().screenshot()
    assert cls.calls == 3


def test_any_other_error_fails_at_once_and_the_class_is_restored():
    cls = _page_class(["Target page, context or browser has been closed"])
    original = cls.screenshot
    with _screenshots_retried(page_class=cls), pytest.raises(Error, match="closed"):
        cls().screenshot()
    assert cls.calls == 1 and cls.screenshot is original
