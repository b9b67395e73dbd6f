"""A dataset manager brings LIDC-IDRI reads in through the browser: two files,
one good and one broken, and the per-file report says which imported."""

from __future__ import annotations

import pytest

from annotation_server.reading.models import ReadingTask
from tests.browser.helpers import login
from tests.reading.import_helpers import case_for_truth, lidc_xml, truth

pytestmark = [
    pytest.mark.browser,
    # serialized like every transactional test: a flush without it re-creates the content
    # types, and the next serialized test then loads them twice
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_manager_imports_lidc_reads_and_sees_the_per_file_report(
    live_server, page, project, manager, tmp_path, artifacts_dir
):
    protocol = project.protocol
    protocol.match_rule = "pylidc"
    protocol.save()
    case = case_for_truth(project, truth())
    good = tmp_path / "LIDC-0001.xml"
    good.write_bytes(lidc_xml())
    bad = tmp_path / "LIDC-0002.xml"
    bad.write_bytes(lidc_xml().replace(truth()["series_instance_uid"].encode(), b"2.25.1"))
    broken = tmp_path / "LIDC-0003.xml"
    broken.write_bytes(b"<LidcReadMessage><ResponseHeader></LidcReadMessage>")

    login(page, live_server, manager.username)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/projects/{project.slug}/reads/import/")
    assert "LIDC (pylidc)" in page.inner_text("main")
    page.set_input_files("[data-testid=files]", [str(good), str(bad), str(broken)])
    page.select_option("[data-testid=format]", "lidc-xml")
    page.click("[data-testid=import-reads]")
    report = page.locator("[data-testid=import-report]")
    report.wait_for(state="visible")
    summary = page.inner_text("[data-testid=import-summary]")
    assert "1 file imported" in summary and "2 files refused" in summary
    ok_row = page.locator("tr[data-file='LIDC-0001.xml']")
    assert ok_row.get_attribute("data-imported") == "yes"
    assert "LIDC0001" in ok_row.inner_text() and "Queued for settling" in ok_row.inner_text()
    unknown = page.locator("tr[data-file='LIDC-0002.xml']")
    assert unknown.get_attribute("data-imported") == "no"
    assert "2.25.1" in unknown.locator("[data-testid=unknown-series]").inner_text()
    assert "Malformed XML" in page.locator("tr[data-file='LIDC-0003.xml']").inner_text()
    page.screenshot(path=str(artifacts_dir / "import-reads-en.png"), full_page=True)
    assert not errors
    assert ReadingTask.objects.filter(case=case, state="submitted").count() == 4
