"""Image QC in the app: run after import, stored per case, gating reading."""

from __future__ import annotations

import pytest

import fixtures
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.projects.services import TransitionError, transition
from annotation_server.quality.models import QcReport
from annotation_server.quality.services import check_case, override_qc

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def _import(project, folder, **kwargs):
    (folder / "truth.json").unlink()
    return ingest(project, from_paths([folder], Limits()), source="test", **kwargs)


def test_import_queues_qc_and_a_clean_series_becomes_readable(
    project, manager, tmp_path, django_capture_on_commit_callbacks
):
    project.qc_profile = {"base": "CT", "min_slices": 4}
    project.save()
    fixtures.generate_ct(tmp_path / "ct", slices=8, seed=51, matrix=128, pixel_spacing=3.0)
    with django_capture_on_commit_callbacks(execute=False):
        report = _import(project, tmp_path / "ct")
    job = Job.objects.get(kind="qc.check_cases")
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    case = Case.objects.get(code=report.cases[0])
    assert case.state == Case.State.QC
    assert case.qc_status in (Case.QcStatus.PASS, Case.QcStatus.WARN)
    qc_report = QcReport.objects.get(case=case)
    assert qc_report.profile["min_slices"] == 4
    assert {r["rule"] for r in qc_report.results} >= {"slice_missing", "slice_thickness"}
    transition(case, Case.State.READING, by=manager)  # allowed


def test_a_failing_series_is_gated_until_a_manager_overrides_with_a_reason(
    project, manager, tmp_path
):
    project.qc_profile = {"base": "CT", "min_slices": 4}
    project.save()
    fixtures.generate_ct(
        tmp_path / "ct", slices=8, seed=52, matrix=128, pixel_spacing=3.0, defect="missing-slice"
    )
    report = _import(project, tmp_path / "ct", run_qc=False, prebuild_streams=False)
    case = Case.objects.get(code=report.cases[0])
    qc_report = check_case(case, by=manager)
    assert qc_report.status == "fail"
    assert "slice_missing" in {r["rule"] for r in qc_report.failing() if r["status"] == "fail"}
    case.refresh_from_db()
    assert case.qc_status == Case.QcStatus.FAIL
    with pytest.raises(TransitionError, match="must pass QC or be overridden"):
        transition(case, Case.State.READING, by=manager)
    with pytest.raises(Exception, match="needs a reason"):
        override_qc(case, by=manager, reason=" ")
    override_qc(case, by=manager, reason="gap is outside the lungs")
    transition(case, Case.State.READING, by=manager)
    case.refresh_from_db()
    assert case.state == Case.State.READING


def test_qc_page_table_distribution_csv_override_and_rerun(
    project, manager, reader_a, tmp_path, django_capture_on_commit_callbacks
):
    from django.test import Client

    project.qc_profile = {"base": "CT", "min_slices": 4}
    project.save()
    fixtures.generate_ct(
        tmp_path / "ok", slices=8, seed=53, matrix=128, pixel_spacing=3.0, manufacturer="siemens"
    )
    fixtures.generate_ct(
        tmp_path / "gap",
        slices=8,
        seed=54,
        matrix=128,
        pixel_spacing=3.0,
        defect="missing-slice",
        manufacturer="ge",
    )
    good = _import(project, tmp_path / "ok", run_qc=False, prebuild_streams=False).cases[0]
    bad = _import(project, tmp_path / "gap", run_qc=False, prebuild_streams=False).cases[0]
    for code in (good, bad):
        check_case(Case.objects.get(code=code))
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    web.force_login(manager)
    page = web.get(f"/projects/{project.slug}/qc/").content.decode()
    assert f'data-case="{good}"' in page and f'data-case="{bad}"' in page
    assert "slice_missing" in page and "SIEMENS" in page
    failing = web.get(f"/projects/{project.slug}/qc/", {"status": "fail"}).content.decode()
    assert f'data-case="{bad}"' in failing and f'data-case="{good}"' not in failing
    csv_text = web.get(f"/projects/{project.slug}/qc/distribution.csv").content.decode(
        "utf-8-sig"  # the download starts with a BOM (Excel on Chinese Windows)
    )
    assert csv_text.splitlines()[0] == "dimension,value,cases,percent"
    assert "manufacturer,SIEMENS,1,50" in csv_text and "manufacturer,GE MEDICAL SYSTEMS,1,50" in (
        csv_text
    )
    bad_case = Case.objects.get(code=bad)
    web.post(f"/projects/{project.slug}/qc/{bad_case.pk}/override/", {"reason": ""})
    bad_case.refresh_from_db()
    assert bad_case.qc_status == Case.QcStatus.FAIL  # no reason, no override
    web.post(
        f"/projects/{project.slug}/qc/{bad_case.pk}/override/",
        {"reason": "gap is below the lung bases"},
    )
    bad_case.refresh_from_db()
    assert bad_case.qc_status == Case.QcStatus.OVERRIDDEN
    with django_capture_on_commit_callbacks(execute=False):
        web.post(f"/projects/{project.slug}/qc/rerun/")
    job = Job.objects.get(kind="qc.check_cases")
    assert len(job.params["case_ids"]) == 2
    project.qc_profile = {
        "base": "CT",
        "min_slices": 4,
        "max_slice_thickness_mm": 1.0,
        "fail_slice_thickness_mm": 1.1,
    }
    project.save()
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    assert any(c["case"] == good and c["to"] == "fail" for c in job.result["changed"]), job.result
    reader = Client()
    reader.force_login(reader_a)
    assert reader.get(f"/projects/{project.slug}/qc/").status_code == 403


def test_profile_versions_and_readers_see_the_warnings(
    project, manager, reader_a, tmp_path, client_for
):
    from django.test import Client

    from tests import factories

    fixtures.generate_ct(
        tmp_path / "thick", slices=8, seed=55, matrix=128, pixel_spacing=3.0, defect="thick-slices"
    )
    case = Case.objects.get(
        code=_import(project, tmp_path / "thick", run_qc=False, prebuild_streams=False).cases[0]
    )
    version = project.qc_profile_version
    project.qc_profile = {"base": "CT", "min_slices": 4, "fail_slice_thickness_mm": 10.0}
    project.save()
    assert project.qc_profile_version == version + 1
    report = check_case(case)
    assert report.profile_version == version + 1
    assert report.status == "warn"  # 5 mm: above the 1.25 mm warning, below the 10 mm limit
    factories.TaskFactory(case=case, reader=reader_a)
    api = client_for(reader_a).get(f"/api/v1/cases/{case.pk}/").json()
    assert any(w["rule"] == "slice_thickness" for w in api["qc_warnings"])
    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    web.force_login(reader_a)
    worklist = web.get("/worklist/").content.decode()
    assert 'data-testid="qc-warning"' in worklist
    manager_web = Client()
    manager_web.force_login(manager)
    assert '<img class="thumb"' in manager_web.get(f"/projects/{project.slug}/qc/").content.decode()


def test_distribution_csv_neutralises_header_values_that_look_like_formulas(
    project, manager, tmp_path
):
    """A scanner's Manufacturer or Model field is data from outside: written as is,
    "=HYPERLINK(...)" ran in the manager's spreadsheet."""
    from django.test import Client

    from annotation_server.imaging.models import Series

    fixtures.generate_ct(tmp_path / "ct", slices=4, seed=57, matrix=64, pixel_spacing=3.0)
    _import(project, tmp_path / "ct", run_qc=False, prebuild_streams=False)
    Series.objects.filter(study__project=project).update(
        manufacturer='=HYPERLINK("http://evil.example","x")', model_name="@SUM(1+1)"
    )
    web = Client()
    web.force_login(manager)
    csv_text = web.get(f"/projects/{project.slug}/qc/distribution.csv").content.decode()
    assert "manufacturer,\"'=HYPERLINK(" in csv_text
    assert "model,'@SUM(1+1)" in csv_text
    assert ",=HYPERLINK" not in csv_text and ",@SUM" not in csv_text
