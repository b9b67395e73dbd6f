"""The import page's PACS part: save a connection, query it (QIDO-RS), pull
selected studies (WADO-RS) into the project through a job."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from annotation_server.audit import services as audit
from annotation_server.imaging.ingest.keys import _fernet
from annotation_server.imaging.models import PacsConnection
from annotation_server.imaging.pacs import PacsClient, PacsError, destination_refusal
from annotation_server.jobs import services as jobs
from annotation_server.projects.permissions import managed_project_or_404


class PacsConnectionForm(forms.ModelForm):
    secret = forms.CharField(
        label=gettext_lazy("password or token"),
        required=False,
        widget=forms.PasswordInput,
        help_text=gettext_lazy("Stored encrypted; never shown again."),
    )

    class Meta:
        model = PacsConnection
        fields = ["name", "base_url", "auth", "username", "site"]

    def clean_base_url(self):
        url = self.cleaned_data["base_url"]
        refusal = destination_refusal(url, settings.REFSET_PACS_ALLOWED_HOSTS)
        if refusal:
            raise forms.ValidationError(
                _(
                    "%(url)s is not an allowed PACS address. The server's operator lists "
                    "the allowed ones in REFSET_PACS_ALLOWED_HOSTS."
                )
                % {"url": url}
            )
        return url

    def clean(self):
        data = super().clean()
        if data.get("auth") in ("basic", "bearer") and not data.get("secret"):
            self.add_error("secret", _("This authentication needs a password or token."))
        if data.get("auth") == "basic" and not data.get("username"):
            self.add_error("username", _("Basic authentication needs a username."))
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
@require_POST
def add_connection(request, slug: str):
    project = managed_project_or_404(request, slug)
    form = PacsConnectionForm(request.POST)
    if form.is_valid():
        connection = form.save(commit=False)
        connection.project = project
        connection.created_by = request.user
        secret = form.cleaned_data.get("secret") or ""
        connection.secret_encrypted = _fernet().encrypt(secret.encode()).decode() if secret else ""
        connection.save()
        audit.record(
            "pacs.connection_added",
            actor=request.user,
            obj=connection,
            project_id=project.pk,
            data={"url": connection.base_url},
        )
        messages.success(request, _("PACS connection saved."))
    else:
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {' '.join(errors)}")
    return redirect("import", slug=project.slug)


@login_required
def search(request, slug: str, pk: int):
    project = managed_project_or_404(request, slug)
    connection = get_object_or_404(PacsConnection, pk=pk, project=project)
    form = QueryForm(request.GET or None)
    studies, error = [], ""
    if form.is_valid():
        filters = {k: v for k, v in form.cleaned_data.items() if v}
        try:
            studies = PacsClient.from_connection(connection, timeout=30).search_studies(**filters)
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
