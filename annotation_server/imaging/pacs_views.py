"""The import page's PACS part and the project's DICOM gateway page.

- PACS connections (DICOMweb or DIMSE): save one, query it (QIDO-RS or C-FIND),
  pull selected studies (WADO-RS, or C-MOVE to RefSet's listener / C-GET) into
  the project through a job.
- DICOM senders (DicomRoute): which calling AE titles, from which hosts, may send
  to RefSet's DICOM listener into this project; add, switch off, switch on.

All of it for the project's managers only, and every change audited
("pacs.connection_added", "dicom.route_added", "dicom.route_deactivated",
"dicom.route_activated").

Routes: `projects/<slug>/pacs/` shows the gateway page (GET) and takes the
connection form (POST, as the import page sends it) or, with form=route /
form=route-active, the sender forms; `pacs/<pk>/` queries, `pacs/<pk>/pull/`
pulls.
"""

from __future__ import annotations

import ipaddress
import re

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from annotation_server.audit import services as audit
from annotation_server.errors import flash_form_errors
from annotation_server.imaging.ingest.keys import _fernet
from annotation_server.imaging.models import DicomRoute, PacsConnection
from annotation_server.imaging.pacs import (
    PacsClient,
    PacsError,
    address_refusal,
    destination_refusal,
)
from annotation_server.jobs import services as jobs
from annotation_server.projects.permissions import managed_project_or_404

# PS3.5 AE title: up to 16 characters of the default repertoire, no backslash or
# control characters; leading and trailing spaces are not significant.
AE_TITLE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


def clean_ae_title(value: str) -> str:
    value = (value or "").strip()
    if not value or not AE_TITLE.match(value):
        raise forms.ValidationError(
            _(
                "An AE title is 1 to 16 characters, letters, digits and punctuation "
                "but no backslash."
            )
        )
    return value


class _URLField(forms.URLField):
    """A DICOMweb URL is written out with its scheme; one without is taken as https."""

    def __init__(self, **kwargs):
        kwargs.setdefault("assume_scheme", "https")
        super().__init__(**kwargs)


class PacsConnectionForm(forms.ModelForm):
    secret = forms.CharField(
        label=gettext_lazy("Password or token"),
        required=False,
        widget=forms.PasswordInput,
        help_text=gettext_lazy("Stored encrypted; never shown again."),
    )

    class Meta:
        model = PacsConnection
        fields = [
            "name",
            "transport",
            "base_url",
            "auth",
            "username",
            "ae_title",
            "host",
            "port",
            "retrieve",
            "site",
        ]
        field_classes = {"base_url": _URLField}
        help_texts = {
            "base_url": gettext_lazy("DICOMweb only."),
            "ae_title": gettext_lazy("DIMSE only; the PACS must know RefSet's AE title."),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Forms that predate DIMSE (and API clients) send neither: DICOMweb, C-MOVE.
        self.fields["transport"].required = False
        self.fields["retrieve"].required = False

    def _refuse(self, field: str, where: str) -> None:
        self.add_error(
            field,
            _(
                "%(url)s is not an allowed PACS address. The server's operator lists "
                "the allowed ones in REFSET_PACS_ALLOWED_HOSTS."
            )
            % {"url": where},
        )

    def clean(self):
        data = super().clean()
        allowed = settings.REFSET_PACS_ALLOWED_HOSTS
        data["transport"] = data.get("transport") or PacsConnection.Transport.DICOMWEB
        data["retrieve"] = data.get("retrieve") or PacsConnection.Retrieve.MOVE
        if data["transport"] == PacsConnection.Transport.DIMSE:
            for field in ("ae_title", "host", "port"):
                if not data.get(field):
                    self.add_error(field, _("A DIMSE connection needs this."))
            if data.get("ae_title"):
                try:
                    data["ae_title"] = clean_ae_title(data["ae_title"])
                except forms.ValidationError as exc:
                    self.add_error("ae_title", exc)
            host, port = data.get("host"), data.get("port")
            if host and port and address_refusal(host, port, allowed):
                self._refuse("host", f"{host}:{port}")
            data["base_url"], data["auth"] = "", PacsConnection.Auth.NONE
            return data
        url = data.get("base_url")
        if not url:
            self.add_error("base_url", _("A DICOMweb connection needs its base URL."))
        elif destination_refusal(url, allowed):
            self._refuse("base_url", url)
        if data.get("auth") in ("basic", "bearer") and not data.get("secret"):
            self.add_error("secret", _("This authentication needs a password or token."))
        if data.get("auth") == "basic" and not data.get("username"):
            self.add_error("username", _("Basic authentication needs a username."))
        return data


class DicomRouteForm(forms.ModelForm):
    class Meta:
        model = DicomRoute
        fields = ["calling_ae_title", "allowed_host", "site"]

    def __init__(self, *args, project=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_calling_ae_title(self):
        return clean_ae_title(self.cleaned_data["calling_ae_title"])

    def clean_allowed_host(self):
        value = (self.cleaned_data["allowed_host"] or "").strip()
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise forms.ValidationError(
                _("Give an IP address (10.1.2.3) or a network (10.1.2.0/24).")
            ) from None

    def clean(self):
        data = super().clean()
        aet, host = data.get("calling_ae_title"), data.get("allowed_host")
        if aet and host:
            taken = DicomRoute.objects.filter(
                active=True, calling_ae_title=aet, allowed_host=host
            ).first()
            if taken is not None:
                self.add_error(
                    "calling_ae_title",
                    _("This AE title and host already send to this project.")
                    if taken.project_id == self.project.pk
                    else _("This AE title and host already send to another project."),
                )
        return data


class QueryForm(forms.Form):
    PatientID = forms.CharField(label=gettext_lazy("patient ID"), required=False)
    AccessionNumber = forms.CharField(label=gettext_lazy("accession number"), required=False)
    StudyDate = forms.CharField(
        label=gettext_lazy("study date"),
        required=False,
        help_text=gettext_lazy("YYYYMMDD or a range YYYYMMDD-YYYYMMDD"),
    )
    ModalitiesInStudy = forms.CharField(label=gettext_lazy("modality"), required=False)


@login_required
@require_http_methods(["GET", "POST"])
def add_connection(request, slug: str):
    """GET: the gateway page. POST: a PACS connection (the import page's form), or
    with form=route / form=route-active a DICOM sender."""
    project = managed_project_or_404(request, slug)
    if request.method == "GET":
        return gateway(request, project)
    if request.POST.get("form") == "route":
        return _add_route(request, project)
    if request.POST.get("form") == "route-active":
        return _set_route_active(request, project)
    form = PacsConnectionForm(request.POST)
    if form.is_valid():
        connection = form.save(commit=False)
        connection.project = project
        connection.created_by = request.user
        secret = form.cleaned_data.get("secret") or ""
        if connection.transport == PacsConnection.Transport.DIMSE:
            secret = ""
        connection.secret_encrypted = _fernet().encrypt(secret.encode()).decode() if secret else ""
        connection.save()
        audit.record(
            "pacs.connection_added",
            actor=request.user,
            obj=connection,
            project_id=project.pk,
            data={"url": connection.base_url, "transport": connection.transport}
            if connection.transport == PacsConnection.Transport.DICOMWEB
            else {"transport": connection.transport, "address": connection.address},
        )
        messages.success(request, _("PACS connection saved."))
    else:
        flash_form_errors(request, form)
    if request.POST.get("next") == "gateway":
        return redirect("pacs-add", slug=project.slug)
    return redirect("import", slug=project.slug)


def gateway(request, project, route_form=None):
    from annotation_server.imaging.dimse.listener import ListenerConfig

    return render(
        request,
        "imaging/dicom_gateway.html",
        {
            "project": project,
            "listener": ListenerConfig.from_settings(),
            "routes": DicomRoute.objects.filter(project=project).select_related("site"),
            "route_form": route_form or DicomRouteForm(project=project),
            "connections": project.pacs_connections.all(),
            "pacs_form": PacsConnectionForm(initial={"transport": "dimse"}),
            "pacs_allowed": settings.REFSET_PACS_ALLOWED_HOSTS,
        },
    )


def _add_route(request, project):
    form = DicomRouteForm(request.POST, project=project)
    if not form.is_valid():
        flash_form_errors(request, form)
        return redirect("pacs-add", slug=project.slug)
    with transaction.atomic():
        route = form.save(commit=False)
        route.project = project
        route.created_by = request.user
        route.save()
        audit.record(
            "dicom.route_added",
            actor=request.user,
            obj=route,
            project_id=project.pk,
            data={"calling_ae": route.calling_ae_title, "allowed_host": route.allowed_host},
        )
    messages.success(request, _("DICOM sender saved."))
    return redirect("pacs-add", slug=project.slug)


def _set_route_active(request, project):
    route = get_object_or_404(DicomRoute, project=project, pk=request.POST.get("route"))
    active = request.POST.get("active") == "1"
    if active and route.active is False:
        clash = DicomRoute.objects.filter(
            active=True,
            calling_ae_title=route.calling_ae_title,
            allowed_host=route.allowed_host,
        ).exists()
        if clash:
            messages.error(request, _("This AE title and host already send to another project."))
            return redirect("pacs-add", slug=project.slug)
    if route.active != active:
        with transaction.atomic():
            route.active = active
            route.save(update_fields=["active"])
            audit.record(
                "dicom.route_activated" if active else "dicom.route_deactivated",
                actor=request.user,
                obj=route,
                project_id=project.pk,
                data={"calling_ae": route.calling_ae_title, "allowed_host": route.allowed_host},
            )
    messages.success(
        request, _("DICOM sender switched on.") if active else _("DICOM sender switched off.")
    )
    return redirect("pacs-add", slug=project.slug)


@login_required
def search(request, slug: str, pk: int):
    project = managed_project_or_404(request, slug)
    connection = get_object_or_404(PacsConnection, pk=pk, project=project)
    form = QueryForm(request.GET or None)
    studies, error = [], ""
    if form.is_valid():
        filters = {k: v for k, v in form.cleaned_data.items() if v}
        try:
            if connection.transport == PacsConnection.Transport.DIMSE:
                from annotation_server.imaging.dimse.scu import DimseClient

                studies = DimseClient.from_connection(connection, timeout=30).find_studies(
                    **filters
                )
            else:
                client = PacsClient.from_connection(connection, timeout=30)
                studies = client.search_studies(**filters)
        except PacsError as exc:
            error = str(exc)
    return render(
        request,
        "imaging/pacs_search.html",
        {
            "project": project,
            "connection": connection,
            "form": form,
            "studies": studies,
            "error": error,
        },
    )


@login_required
@require_POST
def pull(request, slug: str, pk: int):
    project = managed_project_or_404(request, slug)
    connection = get_object_or_404(PacsConnection, pk=pk, project=project)
    study_uids = [uid for uid in request.POST.getlist("study") if uid.strip()]
    if not study_uids:
        messages.error(request, _("Select at least one study."))
        return redirect("pacs-search", slug=slug, pk=pk)
    jobs.enqueue(
        "imaging.pull_pacs",
        project=project,
        user=request.user,
        params={"connection_id": connection.pk, "study_uids": study_uids},
    )
    messages.success(
        request,
        _("Retrieving %(n)s studies; the import report appears below.") % {"n": len(study_uids)},
    )
    return redirect("import", slug=slug)
