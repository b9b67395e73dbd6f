"""The manager's "Model assistance" page: running a model from the browser, what
readers did with each version's proposals, and each version's FROC against the
reference standard; the same figures in the agreement report."""

from __future__ import annotations

import jsonschema
import pytest
from django.utils import timezone

from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.agreement import services as agreement
from annotation_server.agreement.assist import model_froc
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case, ReadingProtocol
from annotation_server.reading import assist
from annotation_server.reading.models import AssistModelVersion, Proposal
from tests import factories

pytestmark = pytest.mark.django_db


def _version(name="lung-nodule", version="9.9"):
    return AssistModelVersion.objects.create(
        name=name,
        version=version,
        task="detection",
        card={"name": name, "threshold": 0.5},
        weights_sha256="cd" * 32,
        source=AssistModelVersion.Source.PLUGIN,
    )


def _propose(case, row, score, x):
    g = factories.nodule_geometry(x=x)
    return Proposal.objects.create(
        case=case,
        series=case.series,
        model_version=row,
        finding_type="nodule",
        geometry=g,
        centre_x_mm=x,
        centre_y_mm=-20.0,
        centre_z_mm=-100.0,
        attributes={},
        score=score,
        threshold=0.3,
    )


def _reference(case, x):
    ReferenceFinding.objects.create(
        case=case,
        finding_type="nodule",
        geometry=factories.nodule_geometry(x=x),
        centre_x_mm=x,
        centre_y_mm=-20.0,
        centre_z_mm=-100.0,
        attributes=factories.complete_nodule_attributes(),
        decision=ReferenceFinding.Decision.AUTO_CONSENSUS,
        decided_at=timezone.now(),
    )


@pytest.fixture
def scored(project):
    """Two adjudicated cases: case 1 has lesions at x=10 and x=60, case 2 one at
    x=10. The model hits case 1's first lesion (0.9), misses its second, hits case
    2's lesion (0.6) and puts a false positive on case 2 (0.8)."""
    ReadingProtocol.objects.filter(project=project).update(match_rule="centre_distance")
    row = _version()
    one = factories.CaseFactory(project=project, code="F001", state=Case.State.ADJUDICATED)
    two = factories.CaseFactory(project=project, code="F002", state=Case.State.ADJUDICATED)
    _reference(one, 10.0)
    _reference(one, 60.0)
    _reference(two, 10.0)
    _propose(one, row, 0.9, 11.0)
    _propose(two, row, 0.6, 10.5)
    _propose(two, row, 0.8, -80.0)
    return row


def test_model_froc_scores_proposals_against_the_reference(project, scored):
    froc = model_froc(project, scored)
    assert (froc["scans"], froc["lesions"], froc["proposals"]) == (2, 3, 3)
    # Above 0.8 one FP on two scans: 0.5 FP/scan. At 1/8 FP per scan (below the
    # first false positive) only the 0.9 hit counts: 1 of 3; from 0.5 FP/scan both
    # hits count: 2 of 3, and never more (one lesion is missed).
    assert froc["sensitivity_at"]["0.125"] == pytest.approx(1 / 3, abs=1e-3)
    assert froc["sensitivity_at"]["0.5"] == pytest.approx(2 / 3, abs=1e-3)
    assert froc["sensitivity_at"]["8"] == pytest.approx(2 / 3, abs=1e-3)
    assert 1 / 3 < froc["cpm"] < 2 / 3


def test_model_froc_is_empty_without_adjudicated_cases(project, case):
    row = _version()
    _propose(case, row, 0.9, 10.0)
    froc = model_froc(project, row)
    assert froc["scans"] == 0 and froc["cpm"] is None


def test_manager_sees_the_page_through_a_session(
    client, project, scored, manager, reader_a, case, tasks
):
    assert client.login(username=manager.username, password=factories.PASSWORD)
    page = client.get(f"/projects/{project.slug}/assistance/", HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-version="lung-nodule 9.9"' in html
    assert "lung-nodule · built in" not in html  # registered above, so listed by version
    assert "CPM" in html
    client.logout()
    assert client.login(username=reader_a.username, password=factories.PASSWORD)
    assert client.get(f"/projects/{project.slug}/assistance/").status_code == 403


def test_manager_runs_a_model_from_the_page(client, project, manager):
    factories.CaseFactory(project=project, code="R001")
    assert client.login(username=manager.username, password=factories.PASSWORD)
    answer = client.post(
        f"/projects/{project.slug}/assistance/run/",
        {"model": "lung-nodule|", "threshold": "0.4", "cases": "R001"},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    job = Job.objects.get(kind="reading.prelabel", project=project)
    assert job.params["threshold"] == 0.4
    assert job.params["case_ids"] == [Case.objects.get(code="R001").pk]
    row = AssistModelVersion.objects.get(pk=job.params["model_version_id"])
    assert row.name == "lung-nodule" and row.source == AssistModelVersion.Source.BUILTIN
    assert f"job {job.pk}" in answer.content.decode()


def test_unknown_cases_and_bad_thresholds_are_refused_by_name(client, project, manager):
    assert client.login(username=manager.username, password=factories.PASSWORD)
    url = f"/projects/{project.slug}/assistance/run/"
    answer = client.post(
        url, {"model": "lung-nodule|", "cases": "NOPE1 NOPE2"}, follow=True,
        HTTP_ACCEPT_LANGUAGE="en",
    )  # fmt: skip
    assert "No such case in this project: NOPE1, NOPE2" in answer.content.decode()
    answer = client.post(
        url, {"model": "lung-nodule|", "threshold": "1.5"}, follow=True, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "A threshold lies between 0 and 1." in answer.content.decode()
    answer = client.post(url, {"model": "nothing|"}, follow=True, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert answer.status_code == 200
    assert not Job.objects.filter(kind="reading.prelabel").exists()


def test_agreement_report_carries_the_assistance_block(project, scored):
    report = agreement.compute(project)
    jsonschema.validate(report, agreement.schema())
    (block,) = report["assistance"]
    assert (block["model"], block["version"]) == ("lung-nodule", "9.9")
    assert block["froc"]["lesions"] == 3
    assert "assistance" not in agreement.compute(
        project, case_ids=[scored.proposals.first().case_id]
    )


def test_resolving_an_unknown_model_names_it():
    with pytest.raises(assist.AssistError, match="nothing"):
        assist.resolve_version("nothing")


def test_the_run_form_offers_models_of_the_projects_modality(client, project, manager):
    assert project.modality == "CT"
    assert client.login(username=manager.username, password=factories.PASSWORD)
    html = client.get(f"/projects/{project.slug}/assistance/").content.decode()
    assert 'value="lung-nodule|"' in html
    assert "chest-radiograph" not in html
