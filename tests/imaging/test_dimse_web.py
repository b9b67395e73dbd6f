"""The DICOM gateway page through a real session login: a manager adds DICOM
senders (routes) and DIMSE PACS connections, switches a sender off and on, every
change audited; wrong input is refused on its field; readers are kept out."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.models import DicomRoute, PacsConnection
from tests import factories

pytestmark = pytest.mark.django_db


def _login(user) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=user.username, password=factories.PASSWORD)
    return client


def _messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def test_manager_adds_a_sender_and_switches_it_off_and_on(project, manager, settings):
    settings.REFSET_DICOM_AE_TITLE = "REFSET_GW"
    settings.REFSET_DICOM_PORT = 11999
    web = _login(manager)
    url = f"/projects/{project.slug}/pacs/"
    page = web.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="listener-aet">REFSET_GW<' in html
    assert 'data-testid="listener-port">11999<' in html

    saved = web.post(
        url,
        {"form": "route", "calling_ae_title": " CT_SCANNER ", "allowed_host": "10.1.2.3"},
        follow=True,
    )
    route = DicomRoute.objects.get(project=project)
    assert (route.calling_ae_title, route.allowed_host, route.active) == (
        "CT_SCANNER",
        "10.1.2.3/32",
        True,
    )
    assert route.created_by == manager
    assert 'data-testid="dicom-route"' in saved.content.decode()
    event = AuditEvent.objects.get(action="dicom.route_added")
    assert event.actor == manager and event.data["calling_ae"] == "CT_SCANNER"

    # the same sender twice, a bad host and a bad AE title are refused on their field
    again = web.post(
        url, {"form": "route", "calling_ae_title": "CT_SCANNER", "allowed_host": "10.1.2.3"},
        follow=True,
    )  # fmt: skip
    assert "already send to this project" in _messages(again)
    bad = web.post(
        url,
        {"form": "route", "calling_ae_title": "A\\B", "allowed_host": "not-an-ip"},
        follow=True,
    )
    text = _messages(bad)
    # each error under its field's label, as the form shows it
    assert "Allowed host:" in text and "Calling AE title:" in text
    assert DicomRoute.objects.count() == 1

    web.post(url, {"form": "route-active", "route": route.pk, "active": "0"})
    route.refresh_from_db()
    assert route.active is False
    assert AuditEvent.objects.filter(action="dicom.route_deactivated").count() == 1
    web.post(url, {"form": "route-active", "route": route.pk, "active": "1"})
    route.refresh_from_db()
    assert route.active is True
    assert AuditEvent.objects.filter(action="dicom.route_activated").count() == 1


def test_a_sender_routed_to_another_project_is_refused(project, manager):
    other = factories.ProjectFactory(slug="other", name="Other")
    DicomRoute.objects.create(
        project=other, calling_ae_title="CT_SCANNER", allowed_host="10.1.2.3/32"
    )
    web = _login(manager)
    refused = web.post(
        f"/projects/{project.slug}/pacs/",
        {"form": "route", "calling_ae_title": "CT_SCANNER", "allowed_host": "10.1.2.3"},
        follow=True,
    )
    assert "already send to another project" in _messages(refused)
    assert not DicomRoute.objects.filter(project=project).exists()


def test_manager_saves_a_dimse_connection_within_the_allowlist(project, manager, settings):
    settings.REFSET_PACS_ALLOWED_HOSTS = ["10.5.0.0/16"]
    web = _login(manager)
    url = f"/projects/{project.slug}/pacs/"
    outside = web.post(
        url,
        {"name": "PACS", "transport": "dimse", "ae_title": "PACS", "host": "10.6.0.1",
         "port": "104", "retrieve": "move", "auth": "none", "next": "gateway"},
        follow=True,
    )  # fmt: skip
    assert "not an allowed PACS address" in _messages(outside)
    missing = web.post(url, {"name": "PACS", "transport": "dimse", "auth": "none"}, follow=True)
    assert "needs this" in _messages(missing)
    assert not PacsConnection.objects.exists()

    web.post(
        url,
        {"name": "Hospital PACS", "transport": "dimse", "ae_title": "HOSP_PACS",
         "host": "10.5.0.7", "port": "104", "retrieve": "get", "auth": "none"},
    )  # fmt: skip
    connection = PacsConnection.objects.get(project=project)
    assert connection.address == "HOSP_PACS@10.5.0.7:104"
    assert connection.retrieve == "get" and connection.base_url == ""
    event = AuditEvent.objects.get(action="pacs.connection_added")
    assert event.data == {"transport": "dimse", "address": "HOSP_PACS@10.5.0.7:104"}
    page = web.get(url).content.decode()
    assert "HOSP_PACS@10.5.0.7:104" in page
    assert "Hospital PACS" in web.get(f"/projects/{project.slug}/import/").content.decode()


def test_readers_and_outsiders_cannot_use_the_gateway_page(project, reader_a, outsider):
    url = f"/projects/{project.slug}/pacs/"
    assert _login(reader_a).get(url).status_code == 403
    assert _login(reader_a).post(url, {"form": "route"}).status_code == 403
    assert _login(outsider).get(url).status_code == 404
    assert not DicomRoute.objects.exists()


def test_the_import_page_leads_its_manager_to_the_gateway(project, manager, reader_a, settings):
    """The import page's "DICOM gateway" link, followed as a browser would after a
    real login, opens the gateway page with the listener's address on it; the
    project's reader sees neither page."""
    import re

    settings.REFSET_DICOM_AE_TITLE = "RS_LINK"
    web = _login(manager)
    page = web.get(f"/projects/{project.slug}/import/")
    assert page.status_code == 200
    link = re.search(r'<a href="([^"]+)" data-testid="dicom-gateway-link">', page.content.decode())
    assert link, "the import page has no DICOM gateway link"
    assert link.group(1) == f"/projects/{project.slug}/pacs/"
    gateway = web.get(link.group(1))
    assert gateway.status_code == 200
    assert 'data-testid="listener-aet">RS_LINK<' in gateway.content.decode()
    assert _login(reader_a).get(f"/projects/{project.slug}/import/").status_code == 403
