"""A manager opens the agreement page in a real browser: figures render, the
reader below the threshold is flagged, downloads are offered (screenshot)."""

from __future__ import annotations

import pytest

from annotation_server.agreement import services
from tests.agreement.seed import seed_reads
from tests.browser.helpers import login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_manager_sees_agreement_figures_and_flags(
    live_server, page, project, manager, reader_a, reader_b, reader_c, artifacts_dir
):
    seed_reads(project, {"a": reader_a, "b": reader_b, "c": reader_c})
    services.update_settings(project, manager, replicates=200, flag_below=0.9)
    services.store(project, by=manager)
    login(page, live_server, "manager")
    page.goto(f"{live_server.url}/projects/{project.slug}/agreement/")
    assert "Reader agreement" in page.locator("h1").inner_text()
    for name in ("heatmap", "detection", "lidc", "weekly"):
        img = page.locator(f"figure[data-figure={name}] img")
        assert img.count() == 1
        width = img.evaluate("el => el.naturalWidth")
        assert width > 100, name
    assert page.locator("[data-testid=reader-flag]").count() >= 1
    assert page.locator("[data-testid=agreement-strata] table").count() == 6
    page.screenshot(path=str(artifacts_dir / "agreement-page-en.png"), full_page=True)
    with page.expect_download() as download:
        page.click("figure[data-figure=heatmap] figcaption >> text=SVG")
    assert download.value.suggested_filename == f"{project.slug}-heatmap.svg"
