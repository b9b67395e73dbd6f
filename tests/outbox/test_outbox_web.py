"""The outbox page and REST endpoints, through a signed-in session with CSRF:
destinations (add, mark inside the hospital), "send the case's reference", the
outbox per case and per destination, retry and cancel; who may see it. The
harness's broker has no worker: the job that builds and queues a case is run
here by hand (jobs.execute), the delivery jobs not at all, so items stay
pending; delivery itself is tested against Orthanc in test_writeback_orthanc.py."""

from __future__ import annotations

import pytest

from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.models import PacsConnection
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.outbox.models import Destination, OutboxItem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pacs(project, settings):
    settings.REFSET_PACS_ALLOWED_HOSTS = ["pacs.hospital.example"]
    return PacsConnection.objects.create(
        project=project, name="Ward PACS", base_url="https://pacs.hospital.example/dicom-web"
    )


@pytest.fixture
def client_for(client_for):
    """Signed-in clients whose browser asks for English."""

    def make(user):
        client = client_for(user)
        client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
        return client

    return make


def _url(project) -> str:
    return f"/projects/{project.slug}/outbox/"


def test_gateway_page_links_the_outbox(project, manager, client_for):
    page = client_for(manager).get(f"/projects/{project.slug}/pacs/")
    assert page.status_code == 200
    assert _url(project).encode() in page.content


def test_who_may_open_the_outbox(project, manager, reader_a, outsider, client_for):
    assert client_for(manager).get(_url(project)).status_code == 200
    assert client_for(reader_a).get(_url(project)).status_code == 403
    assert client_for(outsider).get(_url(project)).status_code == 404
    assert client_for(reader_a).get("/api/v1/outbox-items/").json()["results"] == []


def test_manager_adds_a_hospital_destination_marks_it_and_sends_a_case(
    project, settled_case, pacs, manager, key_keeper, client_for
):
    client = client_for(key_keeper)
    page = client.post(
        _url(project),
        {"form": "destination", "name": "Ward", "kind": "hospital", "connection": pacs.pk},
    )
    assert page.status_code == 302
    dest = Destination.objects.get(project=project, name="Ward")
    assert not dest.inside_hospital

    refused = client.post(
        _url(project), {"form": "send-case", "case": settled_case.code, "destination": dest.pk}
    )
    assert refused.status_code == 403 and b"inside the hospital" in refused.content
    assert not OutboxItem.objects.exists()

    client.post(_url(project), {"form": "mark", "destination": dest.pk, "inside": "1"})
    dest.refresh_from_db()
    assert dest.inside_hospital and dest.marked_by == key_keeper
    sent = client.post(
        _url(project),
        {"form": "send-case", "case": settled_case.code, "destination": dest.pk},
        follow=True,
    )
    assert sent.status_code == 200
    assert "is being prepared for Ward" in sent.content.decode()
    assert not OutboxItem.objects.exists()  # built by the job, not in the request
    (job,) = Job.objects.filter(kind="outbox.queue_case")
    assert jobs.execute(job.pk) == Job.State.SUCCEEDED
    items = list(OutboxItem.objects.filter(destination=dest))
    assert sorted(i.carries for i in items) == ["reference_seg", "reference_sr"]
    assert all(i.status == "pending" and i.transport == "stow" for i in items)
    assert all(i.case_id == settled_case.pk and i.reference_digest for i in items)
    assert all(i.created_by == key_keeper for i in items)
    assert AuditEvent.objects.filter(action="outbox.queued").count() == 1

    # per case and per destination
    by_case = client.get(_url(project), {"case": settled_case.code}).content.decode()
    assert by_case.count('data-testid="outbox-item"') == 2
    assert (
        client.get(_url(project), {"case": "NOPE"})
        .content.decode()
        .count('data-testid="outbox-item"')
        == 0
    )
    by_dest = client.get(_url(project), {"destination": dest.pk}).content.decode()
    assert all(i.sop_instance_uid in by_dest for i in items)

    # cancel, then retry
    item = items[0]
    client.post(_url(project), {"form": "cancel", "item": item.pk})
    item.refresh_from_db()
    assert item.status == "cancelled"
    client.post(_url(project), {"form": "retry", "item": item.pk})
    item.refresh_from_db()
    assert item.status == "pending" and item.attempts == 0 and item.job_id


def test_without_the_key_store_permission_a_hospital_send_is_refused(
    project, settled_case, pacs, manager, client_for
):
    dest = Destination.objects.create(
        project=project, name="Ward", kind="hospital", connection=pacs, inside_hospital=True
    )
    page = client_for(manager).post(
        _url(project), {"form": "send-case", "case": settled_case.code, "destination": dest.pk}
    )
    assert page.status_code == 403 and b"key-store permission" in page.content
    assert not OutboxItem.objects.exists()
    assert not Job.objects.filter(kind="outbox.queue_case").exists()


def test_bad_input_on_the_page_names_the_problem(project, pacs, manager, client_for):
    client = client_for(manager)
    Destination.objects.create(project=project, name="Archive", kind="research", connection=pacs)
    page = client.post(
        _url(project),
        {"form": "send-case", "case": "NO-SUCH", "destination": Destination.objects.get().pk},
        follow=True,
    )
    assert "No case NO-SUCH in this project." in page.content.decode()
    page = client.post(
        _url(project),
        {"form": "destination", "name": "Archive", "kind": "research", "connection": pacs.pk},
        follow=True,
    )
    assert "already has a destination of this name" in page.content.decode()
    assert Destination.objects.count() == 1


def test_rest_destinations_send_case_and_items(
    project, settled_case, pacs, manager, reader_a, client_for
):
    api = client_for(manager)
    created = api.post(
        "/api/v1/writeback-destinations/",
        {"project": project.slug, "name": "Archive", "kind": "research", "connection": pacs.pk},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert created.json()["transport"] == "stow"
    dest_id = created.json()["id"]
    assert (
        client_for(reader_a)
        .post(
            "/api/v1/writeback-destinations/",
            {"project": project.slug, "name": "X", "kind": "research", "connection": pacs.pk},
            format="json",
        )
        .status_code
        == 403
    )
    bad = api.post(f"/api/v1/writeback-destinations/{dest_id}/send-case/", {"case": "NOPE"})
    assert bad.status_code == 400 and "No case NOPE" in str(bad.json()["case"])
    sent = api.post(
        f"/api/v1/writeback-destinations/{dest_id}/send-case/",
        {"case": settled_case.code},
        format="json",
    )
    assert sent.status_code == 202, sent.json()
    assert sent.json()["kind"] == "outbox.queue_case"
    assert jobs.execute(sent.json()["id"]) == Job.State.SUCCEEDED
    listed = api.get("/api/v1/outbox-items/", {"case": settled_case.code}).json()["results"]
    assert len(listed) == 2 and all(i["status"] == "pending" for i in listed)
    one = listed[0]["id"]
    assert api.post(f"/api/v1/outbox-items/{one}/cancel/").json()["status"] == "cancelled"
    assert api.post(f"/api/v1/outbox-items/{one}/cancel/").status_code == 409
    assert api.post(f"/api/v1/outbox-items/{one}/retry/").json()["status"] == "pending"
    assert client_for(reader_a).post(f"/api/v1/outbox-items/{one}/cancel/").status_code == 404
    mark = api.post(f"/api/v1/writeback-destinations/{dest_id}/mark-inside/", {"inside": True})
    assert mark.status_code == 400  # a research archive is not marked
