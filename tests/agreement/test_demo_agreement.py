"""`manage.py demo` leaves an agreement report, so the page shows figures."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from annotation_server.agreement.models import AgreementReport
from annotation_server.projects.models import Project
from tests import factories


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_demo_computes_the_lung_projects_agreement(media, celery_worker):
    for key in ("lung-nodule-ct", "chest-radiograph"):
        factories.schema(key)
    call_command(
        "demo",
        "--ct-cases", "5", "--ct-slices", "8", "--xr-cases", "2", "--xr-size", "256",
        "--password", "demo-pass-123",
    )  # fmt: skip
    lung = Project.objects.get(slug="demo-lung-ct")
    row = AgreementReport.objects.get(project=lung, scope="project")
    report = row.report
    assert report["counts"]["reads"] > 0 and report["counts"]["readers"] >= 3
    assert report["detection"]["clusters"] > 0
