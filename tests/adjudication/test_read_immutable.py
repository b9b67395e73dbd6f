"""A reader's submitted read cannot be changed after its phase closes, by anyone,
through any write the API offers."""

from __future__ import annotations

import pytest

from annotation_server.adjudication import services
from annotation_server.reading.models import CaseLabel, Finding
from tests.adjudication.conftest import add_finding, ellipse, submit_all


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["reader_a", "manager", "arbitrator"])
def test_submitted_read_is_immutable_through_the_api(
    who, request, grid_case, tasks, protocol, client_for
):
    finding = add_finding(tasks["reader_a"], ellipse(100, 100, [5]))
    add_finding(tasks["reader_b"], ellipse(101, 100, [5]))
    labels = {"nodules_present": True, "image_quality": 3}
    submit_all(tasks, dict.fromkeys(tasks, labels))
    services.settle_case(grid_case.pk)  # 2 of 3 readers: disputed, case in arbitration
    grid_case.refresh_from_db()
    assert grid_case.state == "arbitration"
    before = Finding.objects.filter(pk=finding.pk).values().get()
    label_before = CaseLabel.objects.get(task=tasks["reader_a"]).values
    api = client_for(request.getfixturevalue(who))
    url = f"/api/v1/findings/{finding.pk}/"
    moved = ellipse(150, 150, [9])
    attempts = [
        api.patch(url, {"geometry": moved, "version": finding.version}, format="json"),
        api.put(
            url,
            {
                "task": tasks["reader_a"].pk,
                "finding_type": "nodule",
                "geometry": moved,
                "attributes": {"nodule_type": "calcified", "long_axis_mm": 9, "malignancy": 1},
                "version": finding.version,
            },
            format="json",
        ),
        api.delete(f"{url}?version={finding.version}"),
        api.post(
            "/api/v1/findings/",
            {"task": tasks["reader_a"].pk, "finding_type": "nodule", "geometry": moved},
            format="json",
        ),
        api.put(
            f"/api/v1/reading-tasks/{tasks['reader_a'].pk}/case-label/",
            {"values": {"nodules_present": False, "image_quality": 1}, "version": 1},
            format="json",
        ),
        api.post(f"/api/v1/reading-tasks/{tasks['reader_a'].pk}/submit/", {}, format="json"),
    ]
    for resp in attempts:
        assert resp.status_code in (400, 403, 404, 409), (resp.status_code, resp.content)
    assert Finding.objects.filter(pk=finding.pk).values().get() == before
    assert Finding.objects.filter(task=tasks["reader_a"]).count() == 1
    assert CaseLabel.objects.get(task=tasks["reader_a"]).values == label_before
