"""QC overrides on the QC page: who overrode, when and why, read back from the
audit trail; every row opens its series in the read-only viewer."""

from __future__ import annotations

import pytest

from annotation_server.projects.models import Case
from annotation_server.quality.overrides import overrides_by_case
from annotation_server.quality.services import override_qc
from tests import factories

pytestmark = pytest.mark.django_db


def test_qc_page_shows_who_overrode_when_and_why(project, manager, client):
    manager.first_name, manager.last_name = "Li", "Na"
    manager.save()
    case = factories.CaseFactory(project=project, code="OV1", qc_status=Case.QcStatus.FAIL)
    other = factories.CaseFactory(project=project, code="OV2", qc_status=Case.QcStatus.FAIL)
    override_qc(case, by=manager, reason="5 mm slices accepted for this site")
    found = overrides_by_case([case.pk, other.pk])
    assert set(found) == {case.pk}
    assert found[case.pk]["by"] == "Li Na"
    assert found[case.pk]["reason"] == "5 mm slices accepted for this site"
    client.force_login(manager)
    page = client.get(f"/projects/{project.slug}/qc/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert page.count('data-testid="qc-override"') == 1
    assert "Overridden by Li Na on" in page and "5 mm slices accepted for this site" in page
    assert f"/projects/{project.slug}/cases/{case.pk}/images/?from=qc" in page
    assert f"/projects/{project.slug}/cases/{other.pk}/images/?from=qc" in page
