"""A dataset manager drafts a version of the adjudicated cases, reviews its
splits and freezes it, in a real browser (screenshots in the artifacts dir)."""

from __future__ import annotations

import pytest

from annotation_server.datasets.models import DatasetVersion
from annotation_server.projects.models import Case
from tests.browser.helpers import login
from tests.datasets.conftest import make_case

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def protocol(project):
    p = project.protocol
    p.auto_accept_min_readers = 3
    p.drop_below_readers = 1
    p.save()
    return p


def test_manager_freezes_a_version_in_the_browser(
    live_server, page, project, protocol, reader_a, reader_b, reader_c, manager, artifacts_dir
):
    readers = [reader_a, reader_b, reader_c]
    for i in range(6):
        make_case(project, readers, f"B{i:02d}", patient=f"PB{i:02d}", positive=i % 2 == 0)
    login(page, live_server, "manager")
    page.click("[data-testid=versions-link]")
    page.wait_for_url(f"{live_server.url}/projects/{project.slug}/versions/")
    assert "6 adjudicated cases" in page.inner_text("main")
    page.fill("[data-testid=version-name]", "1.0.0")
    page.check("input[name=selection][value=list]")
    page.fill("[data-testid=version-codes]", "B00\nB01\nB02\nB03\nB04")
    page.click("[data-testid=draft-submit]")
    page.wait_for_url(f"{live_server.url}/projects/{project.slug}/versions/1.0.0/")
    assert page.inner_text("[data-testid=version-state]") == "draft"
    rows = page.locator("[data-testid=version-cases] tbody tr[data-case]")
    shown = rows.count()
    assert 1 <= shown <= 5  # the sequestered split's cases are not shown to this manager
    page.screenshot(path=str(artifacts_dir / "version-draft.png"), full_page=True)
    page.check("[data-testid=freeze-understood]")
    page.fill("[data-testid=freeze-confirm]", "1.0.0")
    page.click("[data-testid=freeze-submit]")
    page.wait_for_load_state("networkidle")
    assert page.inner_text("[data-testid=version-state]") == "frozen"
    version = DatasetVersion.objects.get(project=project, version="1.0.0")
    assert version.frozen
    assert page.inner_text("[data-testid=content-hash]") == version.content_sha256
    assert Case.objects.get(code="B00").state == "frozen"
    assert Case.objects.get(code="B05").state == "adjudicated"
    page.screenshot(path=str(artifacts_dir / "version-frozen.png"), full_page=True)
