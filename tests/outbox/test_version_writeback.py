"""A frozen version goes to a research archive: its reference SEG and SR and the
de-identified images, built by the `outbox.queue_version` job (as the page and
the API start it), delivered to Orthanc by STOW-RS; a hospital destination is
refused for a version."""

from __future__ import annotations

import json

import pytest

from annotation_server.datasets import services as datasets
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.outbox import services
from annotation_server.outbox.models import OutboxItem
from tests.outbox.conftest import dciodvfy_errors, destination, run_jobs

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_frozen_version_to_a_research_archive(
    project, settled_case, orthanc, manager, client_for, tmp_path
):
    version = datasets.freeze(
        datasets.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True),
        by=manager,
    )
    archive = destination(project, orthanc, "stow", "research")
    hospital = destination(project, orthanc, "stow", "hospital")
    with pytest.raises(services.OutboxConflict, match="research archive only"):
        services.queue_version(version, hospital, manager)

    api = client_for(manager)
    answer = api.post(
        f"/api/v1/writeback-destinations/{archive.pk}/send-version/", {"version": "1.0.0"}
    )
    assert answer.status_code == 202, answer.json()
    assert jobs.execute(answer.json()["id"]) == Job.State.SUCCEEDED
    items = list(OutboxItem.objects.filter(dataset_version=version))
    assert sorted(i.carries for i in items) == ["image"] * 6 + ["reference_seg", "reference_sr"]
    rows = run_jobs(items)
    assert {r.status for r in rows} == {"delivered"}, [r.last_error for r in rows]
    assert orthanc.get_json("/statistics")["CountInstances"] == 6 + 8
    seg = next(r for r in rows if r.carries == "reference_seg")
    status, body = orthanc.request("POST", "/tools/lookup", seg.sop_instance_uid.encode())
    oid = next(r["ID"] for r in json.loads(body) if r["Type"] == "Instance")
    status, data = orthanc.request("GET", f"/instances/{oid}/file")
    assert status == 200 and dciodvfy_errors(data, tmp_path) == []
