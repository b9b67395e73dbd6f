"""A dataset manager scores an AI product's output against a frozen version in a
real browser: uploads the LUNA16 CSV from the version's evaluation page, watches
the job (a real Celery worker) until the report appears, downloads report.html
and opens it from disk (file://, offline) in Chromium, where both languages'
plots load. Screenshots in the artifacts dir."""

from __future__ import annotations

import pytest

from annotation_server.datasets import services
from annotation_server.datasets.models import Evaluation
from tests.browser.helpers import login
from tests.datasets.conftest import make_case
from tests.datasets.test_evaluation import detection_csv

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PLOTS_LOADED = """() => {
  const imgs = [...document.querySelectorAll('section:not([hidden]) img[data-plot]')]
    .filter((i) => i.offsetParent !== null);
  return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
}"""


@pytest.fixture
def media(settings, tmp_path):
    """Set before the worker starts: the worker reads the stored submission."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def protocol(project):
    p = project.protocol
    p.auto_accept_min_readers = 3
    p.drop_below_readers = 1
    p.match_rule = "centre_distance"
    p.match_threshold = 5.0
    p.save()
    return p


def test_manager_evaluates_a_product_and_opens_the_report_offline(
    media,
    live_server,
    page,
    project,
    protocol,
    reader_a,
    reader_b,
    reader_c,
    manager,
    celery_worker,
    artifacts_dir,
    tmp_path,
):
    readers = [reader_a, reader_b, reader_c]
    for i in range(8):
        make_case(project, readers, f"EV{i:02d}", patient=f"PE{i:02d}", positive=i % 4 != 0)
    version = services.freeze(
        services.create_draft(
            project,
            version="1.0.0",
            by=manager,
            all_adjudicated=True,
            seed=3,
            ratios={"train": 0.5, "validation": 0.0, "test": 0.5},
        ),
        by=manager,
    )
    submission = tmp_path / "acme_luna16.csv"
    submission.write_bytes(detection_csv(version, "train"))

    login(page, live_server, "manager", language="zh-hans")
    page.goto(f"{live_server.url}/projects/{project.slug}/versions/1.0.0/")
    page.click("[data-testid=evaluations-link]")
    page.wait_for_url(f"{live_server.url}/projects/{project.slug}/versions/1.0.0/evaluations/")
    page.set_input_files("[data-testid=evaluation-file]", str(submission))
    page.fill("[data-testid=evaluation-product]", "Acme 肺结节 CAD")
    page.select_option("[data-testid=evaluation-split]", "train")
    page.click("[data-testid=evaluation-submit]")
    page.wait_for_url("**/evaluations/*/")
    page.wait_for_selector("[data-testid=evaluation-report]", timeout=120_000)
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "succeeded" and evaluation.product == "Acme 肺结节 CAD"
    cpm = f"{evaluation.result['figures']['cpm']['value']:.3f}"
    assert cpm in page.inner_text("[data-testid=evaluation-figures] tr[data-figure=cpm]")
    assert page.locator("[data-testid=rule-table] tr[data-declared]").count() == 1
    assert page.locator("img[data-plot=froc]").count() == 1
    page.wait_for_function(
        "() => [...document.querySelectorAll('img[data-plot]')]"
        ".every((i) => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(artifacts_dir / "evaluation-report-page.png"), full_page=True)

    with page.expect_download() as info:
        page.click("[data-testid=download-html]")
    report = tmp_path / "report.html"
    info.value.save_as(report)
    html = report.read_text()
    assert "<script" not in html and "评估报告" in html and "Evaluation report" in html

    offline = page.context.new_page()
    offline.goto(report.as_uri())
    offline.wait_for_function(PLOTS_LOADED)
    assert offline.locator("#zh").is_visible() and not offline.locator("#en").is_visible()
    assert "评估报告" in offline.inner_text("#zh h1")
    offline.screenshot(path=str(artifacts_dir / "evaluation-report-offline-zh.png"), full_page=True)
    offline.click("a[href='#en']")
    offline.wait_for_function(PLOTS_LOADED)
    assert offline.locator("#en").is_visible() and not offline.locator("#zh").is_visible()
    assert "Evaluation report" in offline.inner_text("#en h1")
    widths = offline.eval_on_selector_all(
        "#en img[data-plot]", "els => els.map(e => e.naturalWidth)"
    )
    assert widths and min(widths) > 0
    offline.screenshot(path=str(artifacts_dir / "evaluation-report-offline-en.png"), full_page=True)
    offline.close()
