"""QC re-run shows what changed (issue 12): per case and rule, the status before
and after; a case already in reading that now fails is flagged to the manager
(overview, re-run page) and to its readers (worklist), never silently kept; the
flag goes once QC passes again or the manager overrides."""

from __future__ import annotations

import pytest
from django.test import Client

import fixtures
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from annotation_server.quality.models import CaseFlag
from annotation_server.quality.services import check_case, open_flags, override_qc
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_rerun_lists_rule_changes_and_flags_a_case_in_reading_that_now_fails(
    project, manager, reader_a, outsider, tmp_path, django_capture_on_commit_callbacks
):
    project.qc_profile = {"base": "CT", "min_slices": 4}
    project.save()
    fixtures.generate_ct(tmp_path / "ct", slices=8, seed=61, matrix=128, pixel_spacing=3.0)
    (tmp_path / "ct" / "truth.json").unlink()
    report = ingest(
        project,
        from_paths([tmp_path / "ct"], Limits()),
        source="test",
        run_qc=False,
        prebuild_streams=False,
    )
    case = Case.objects.get(code=report.cases[0])
    check_case(case)
    case.refresh_from_db()
    assert case.qc_status in (Case.QcStatus.PASS, Case.QcStatus.WARN)
    Case.objects.filter(pk=case.pk).update(state=Case.State.READING)
    task = factories.TaskFactory(case=case, reader=reader_a)

    web = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert web.login(username=manager.username, password=factories.PASSWORD)
    with django_capture_on_commit_callbacks(execute=False):
        answer = web.post(f"/projects/{project.slug}/qc/rerun/")
    job = Job.objects.get(kind="qc.check_cases")
    assert answer["Location"] == f"/projects/{project.slug}/qc/rerun/{job.pk}/"
    # the profile tightens: the 8-slice series is now too short
    project.qc_profile = {"base": "CT", "min_slices": 20}
    project.save()
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    job.refresh_from_db()
    changes = {
        (c["case"], c["rule"]): (c["before"], c["after"]) for c in job.result["rule_changes"]
    }
    assert changes[(case.code, "slice_count")][1] == "fail", job.result
    assert changes[(case.code, "slice_count")][0] != "fail"
    assert job.result["flagged"] == [{"case": case.code, "case_id": case.pk, "state": "reading"}]

    flag = CaseFlag.objects.get(case=case)
    assert flag.kind == CaseFlag.Kind.QC_FAILED_IN_READING and flag.is_open
    assert "slice_count" in flag.data["rules"]
    assert AuditEvent.objects.filter(action="case.flagged", object_id=str(case.pk)).count() == 1

    page = web.get(answer["Location"]).content.decode()
    assert f'data-case="{case.code}" data-rule="slice_count"' in page
    assert "now fails QC" in page
    overview = web.get(f"/projects/{project.slug}/").content.decode()
    assert 'data-kind="qc_failed_in_reading"' in overview

    reader = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert reader.login(username=reader_a.username, password=factories.PASSWORD)
    worklist = reader.get("/worklist/").content.decode()
    assert f'data-task="{task.pk}"' in worklist and "failed QC while in reading" in worklist
    # the re-run page is the managers': a reader and an outsider get 404
    assert reader.get(answer["Location"]).status_code == 404
    other = Client()
    assert other.login(username=outsider.username, password=factories.PASSWORD)
    assert other.get(answer["Location"]).status_code == 404

    # a second re-run keeps one open flag; an override takes it off the lists
    check_case(case)
    assert CaseFlag.objects.filter(case=case).count() == 1
    override_qc(case, by=manager, reason="the scan covers the lungs")
    assert open_flags([case.pk]) == {}
    # QC passing again resolves the flag for good
    project.qc_profile = {"base": "CT", "min_slices": 4}
    project.save()
    Case.objects.filter(pk=case.pk).update(qc_status=Case.QcStatus.PASS)
    check_case(Case.objects.get(pk=case.pk))
    assert not CaseFlag.objects.get(case=case).is_open
    assert AuditEvent.objects.filter(action="case.flag_resolved").count() == 1
