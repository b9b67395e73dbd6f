"""The agreement app: report from the project's rows, cache and fingerprint,
the job, the page and downloads (managers only, never while reading blind),
the REST endpoint, the management command and the JSON schema."""

from __future__ import annotations

import csv
import io
import json

import jsonschema
import pytest
from django.core.management import call_command

from annotation_server import registry
from annotation_server.agreement import services
from annotation_server.agreement.models import AgreementReport
from annotation_server.audit.models import AuditEvent
from annotation_server.jobs.models import Job
from annotation_server.reading.models import Finding, ReadingTask
from tests import factories
from tests.agreement.seed import seed_reads

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded(project, reader_a, reader_b, reader_c):
    seed_reads(project, {"a": reader_a, "b": reader_b, "c": reader_c})
    settings = services.settings_for(project)
    settings.replicates = 100
    settings.save()
    return project


def test_report_for_reads_the_projects_rows(seeded, reader_a):
    report = services.report_for(seeded)
    jsonschema.validate(report, services.schema())
    assert report["counts"] == {
        "cases": 4, "readers": 3, "reads": 12, "findings": 17, "clusters": 7,
    }  # fmt: skip
    assert report["detection"]["reference_cases"] == 2
    per = {r["reader"]: r for r in report["detection"]["per_reader"]}
    a = per[str(reader_a.pk)]
    assert (a["tp"], a["fn"], a["fp"]) == (3, 0, 0)
    table = {r["readers"]: r["lesions"] for r in report["detection"]["lidc_table"]}
    assert table == {1: 1, 2: 2, 3: 4}
    labels = {b["key"]: b for b in report["case_labels"]}
    assert labels["image_quality"]["units"] == 4
    malignancy = next(b for b in report["attributes"] if b["key"] == "malignancy")
    assert malignancy["level"] == "ordinal" and malignancy["pairwise"]
    assert [w["week"] for w in report["weekly"]] == sorted(w["week"] for w in report["weekly"])
    assert len(report["weekly"]) == 4


def test_report_for_a_subset_of_cases(seeded):
    ids = list(seeded.cases.order_by("code").values_list("pk", flat=True)[:2])
    report = services.report_for(seeded, ids)
    assert report["counts"]["cases"] == 2
    assert AgreementReport.objects.filter(project=seeded).exclude(scope="project").count() == 1


def test_report_is_cached_until_a_read_changes(seeded):
    first = services.store(seeded)
    assert services.store(seeded).pk == first.pk
    finding = Finding.objects.filter(task__case__project=seeded).first()
    finding.attributes = {**finding.attributes, "malignancy": 1}
    finding.version += 1
    finding.save()
    second = services.store(seeded)
    assert second.pk != first.pk and second.fingerprint != first.fingerprint
    assert AuditEvent.objects.filter(action="agreement.computed").count() == 2


def test_flag_threshold_is_set_by_the_manager(seeded, manager, reader_c):
    services.update_settings(seeded, manager, flag_below=0.9)
    report = services.report_for(seeded)
    assert str(reader_c.pk) in report["flagged_readers"]
    assert AuditEvent.objects.filter(action="agreement.settings_changed").exists()
    services.update_settings(seeded, manager, flag_below=0.0)
    assert services.report_for(seeded)["flagged_readers"] == []


def test_the_job_kind_computes_and_stores(seeded, manager):
    assert registry.JOB_HANDLERS["agreement.compute"].endswith("agreement.jobs.compute_report")
    from annotation_server.agreement.jobs import compute_report
    from annotation_server.jobs.services import JobContext

    job = Job.objects.create(
        kind="agreement.compute",
        project=seeded,
        created_by=manager,
        params={"project_id": seeded.pk},
    )
    result = compute_report(JobContext(job))
    assert result["cases"] == 4
    job.refresh_from_db()
    assert job.progress == 100
    assert AgreementReport.objects.filter(pk=result["report_id"]).exists()


def test_manager_page_shows_figures_and_downloads(seeded, manager, session_client_for):
    services.store(seeded)
    client = session_client_for(manager)
    page = client.get(f"/projects/{seeded.slug}/agreement/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'data-figure="heatmap"' in body and "data:image/png;base64," in body
    assert 'data-testid="agreement-lidc"' in body
    png = client.get(f"/projects/{seeded.slug}/agreement/figure.png?name=detection")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    svg = client.get(f"/projects/{seeded.slug}/agreement/figure.svg?name=heatmap&download=1")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    assert "attachment" in svg["Content-Disposition"]
    assert client.get(f"/projects/{seeded.slug}/agreement/figure.png?name=nope").status_code == 404
    data = client.get(f"/projects/{seeded.slug}/agreement/report.json").json()
    jsonschema.validate(data, services.schema())
    text = client.get(f"/projects/{seeded.slug}/agreement/report.csv").content.decode()
    assert text.startswith("\ufeff")  # Excel reads it as UTF-8
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["section", "subject", "measure", "value", "ci_low", "ci_high", "n"]
    assert any(r[0] == "reader" and r[2] == "sensitivity" for r in rows)


def test_compute_button_queues_a_job_and_page_shows_progress(seeded, manager, session_client_for):
    client = session_client_for(manager)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=False):
        response = client.post(f"/projects/{seeded.slug}/agreement/compute/")
    assert response.status_code == 302
    job = Job.objects.get(kind="agreement.compute", project=seeded)
    Job.objects.filter(pk=job.pk).update(state="running", progress=40)
    page = client.get(f"/projects/{seeded.slug}/agreement/").content.decode()
    assert 'data-testid="agreement-progress"' in page and 'value="40"' in page


def test_readers_and_outsiders_never_see_agreement(seeded, reader_a, outsider, session_client_for):
    services.store(seeded)
    for path in ("", "report.json", "report.csv", "figure.png?name=heatmap"):
        url = f"/projects/{seeded.slug}/agreement/{path}"
        assert session_client_for(reader_a).get(url).status_code == 403
        assert session_client_for(outsider).get(url).status_code == 404
    api = f"/api/v1/projects/{seeded.slug}/agreement/"
    assert session_client_for(reader_a).get(api).status_code == 403
    assert session_client_for(outsider).get(api).status_code == 404


def test_a_manager_still_reading_blind_sees_no_figures(seeded, manager, session_client_for):
    case = seeded.cases.order_by("code").last()
    ReadingTask.objects.create(case=case, reader=manager, phase=1)
    services.store(seeded)
    client = session_client_for(manager)
    assert client.get(f"/projects/{seeded.slug}/agreement/").status_code == 403
    assert client.get(f"/api/v1/projects/{seeded.slug}/agreement/").status_code == 403


def test_rest_endpoint(seeded, manager, session_client_for):
    client = session_client_for(manager)
    url = f"/api/v1/projects/{seeded.slug}/agreement/"
    assert client.get(url).status_code == 404  # nothing computed yet
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=False):
        queued = client.post(url)
    assert queued.status_code == 202 and queued.json()["job"]
    services.store(seeded)
    data = client.get(url).json()
    assert data["stale"] is False and data["counts"]["cases"] == 4


def test_management_command_prints_and_writes_the_report(seeded, tmp_path):
    out = io.StringIO()
    call_command("agreement", "--project", seeded.slug, "--out", str(tmp_path), stdout=out)
    text = out.getvalue()
    assert "Detection" in text and "sensitivity" in text and "ICC(2,1)" in text
    assert (tmp_path / "report.json").exists() and (tmp_path / "heatmap.svg").exists()
    assert (tmp_path / "detection.png").read_bytes().startswith(b"\x89PNG")
    out = io.StringIO()
    call_command("agreement", "--project", seeded.slug, "--json", stdout=out)
    report = json.loads(out.getvalue())
    jsonschema.validate(report, services.schema())
    assert report["fingerprint"] == services.fingerprint(seeded)


def test_qualification_reads_never_count(seeded, reader_a):
    other = factories.CaseFactory(project=seeded, code="QUAL1", is_qualification=True)
    ReadingTask.objects.create(case=other, reader=reader_a, phase=1, state="submitted")
    assert services.report_for(seeded)["counts"]["cases"] == 4


def test_the_cache_does_not_depend_on_the_language_and_labels_come_in_both(seeded):
    from django.utils import translation

    row = services.store(seeded)
    with translation.override("zh-hans"):
        assert services.fingerprint(seeded) == row.fingerprint
        png = services.figures(services.report_for(seeded), "png")
    assert png["heatmap"].startswith(b"\x89PNG")
    kind = next(b for b in row.report["attributes"] if b["key"] == "nodule_type")
    assert kind["label"] == "Nodule type" and kind["label_zh"] == "结节类型"
