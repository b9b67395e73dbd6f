"""`manage.py demo` seeds every role, both projects and cases in every state."""

from __future__ import annotations

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from annotation_server.imaging.models import Instance
from annotation_server.projects.models import Case, Project
from annotation_server.reading.models import ReadingTask

pytestmark = pytest.mark.django_db


def test_demo_seeds_people_projects_and_states_idempotently(settings, tmp_path, capsys):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    args = [
        "--ct-cases",
        "5",
        "--ct-slices",
        "8",
        "--xr-cases",
        "5",
        "--xr-size",
        "256",
        "--password",
        "demo-pass-123",
    ]
    call_command("demo", *args)
    out = capsys.readouterr().out
    for username in ("admin", "manager", "reader1", "reader2", "reader3", "arbitrator"):
        assert username in out
        assert authenticate(username=username, password="demo-pass-123") is not None
    for slug in ("demo-lung-ct", "demo-chest-xr"):
        project = Project.objects.get(slug=slug)
        states = set(project.cases.values_list("state", flat=True))
        assert states == {"imported", "qc", "reading", "arbitration", "adjudicated"}, slug
    reader_tasks = ReadingTask.objects.filter(reader__username="reader1")
    assert reader_tasks.filter(state="in_progress").exists()
    assert reader_tasks.filter(state="submitted").exists()
    adjudicated = Case.objects.filter(state="adjudicated", project__slug="demo-lung-ct").get()
    assert adjudicated.reference_findings.filter(is_current=True).count() == 3
    assert Instance.objects.filter(series__study__patient_pseudo_id__startswith="P").exists()
    before = Instance.objects.count()
    call_command("demo", *args)  # again: keeps data, resets passwords
    assert Instance.objects.count() == before
    assert "exists, keeping its data" in capsys.readouterr().out
