"""The outbox page of a project (managers only): write-back destinations (add one
on a saved PACS connection, mark a hospital one inside the hospital), "send a
case's reference to a destination", "send a frozen version to a research
archive", and the outbox itself, per case (?case=CODE) and per destination
(?destination=ID), with retry and cancel.

Route: `projects/<slug>/outbox/` (GET: the page; POST with form=destination,
form=mark, form=send-case, form=send-version, form=retry, form=cancel). Domain
errors (a refused hospital send, nothing to send) are shown by the middleware
on the site's error page; form errors come back as messages.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from annotation_server.audit import services as audit
from annotation_server.errors import flash_form_errors
from annotation_server.jobs import services as jobs
from annotation_server.outbox import services
from annotation_server.outbox.models import Destination, OutboxItem
from annotation_server.projects.models import Case
from annotation_server.projects.permissions import managed_project_or_404

PAGE_ROWS = 200
JOB_ROWS = 10
QUEUE_KINDS = ("outbox.queue_case", "outbox.queue_version")


class DestinationForm(forms.ModelForm):
    class Meta:
        model = Destination
        fields = ["name", "kind", "connection"]

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["connection"].queryset = project.pacs_connections.all()

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        if Destination.objects.filter(project=self.project, name=name).exists():
            raise forms.ValidationError(_("This project already has a destination of this name."))
        return name


class SendCaseForm(forms.Form):
    case = forms.CharField(label=gettext_lazy("case"), max_length=32)
    destination = forms.ModelChoiceField(
        label=gettext_lazy("destination"), queryset=Destination.objects.none()
    )

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["destination"].queryset = project.writeback_destinations.all()

    def clean_case(self):
        code = self.cleaned_data["case"].strip()
        case = Case.objects.filter(project=self.project, code=code).first()
        if case is None:
            raise forms.ValidationError(_("No case %(code)s in this project.") % {"code": code})
        return case


class SendVersionForm(forms.Form):
    version = forms.ModelChoiceField(label=gettext_lazy("frozen version"), queryset=None)
    destination = forms.ModelChoiceField(
        label=gettext_lazy("research archive"), queryset=Destination.objects.none()
    )

    def __init__(self, *args, project, **kwargs):
        from annotation_server.datasets.models import DatasetVersion

        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = DatasetVersion.objects.filter(
            project=project, frozen=True
        )
        self.fields["destination"].queryset = project.writeback_destinations.filter(
            kind=Destination.Kind.RESEARCH
        )


def _queue_jobs(project) -> list[dict]:
    """The latest jobs that build and queue a case or a version, with what they
    send (the case code or version) and their outcome."""
    from annotation_server.datasets.models import DatasetVersion
    from annotation_server.jobs.models import Job

    rows = list(
        Job.objects.filter(project=project, kind__in=QUEUE_KINDS)
        .select_related("created_by")
        .order_by("-created_at", "-pk")[:JOB_ROWS]
    )
    cases = dict(
        Case.objects.filter(
            project=project, pk__in=[j.params.get("case") for j in rows if j.params.get("case")]
        ).values_list("pk", "code")
    )
    versions = dict(
        DatasetVersion.objects.filter(
            project=project,
            pk__in=[j.params.get("version") for j in rows if j.params.get("version")],
        ).values_list("pk", "version")
    )
    names = dict(project.writeback_destinations.values_list("pk", "name"))
    return [
        {
            "job": j,
            "case": cases.get(j.params.get("case"), ""),
            "version": versions.get(j.params.get("version"), ""),
            "destination": names.get(j.params.get("destination"), ""),
            "items": (j.result or {}).get("items"),
            # the error's first line (the exception and its message), not the traceback
            "error": (j.error or "").strip().splitlines()[0].split(": ", 1)[-1] if j.error else "",
        }
        for j in rows
    ]


def _items(project, request):
    items = (
        OutboxItem.objects.filter(project=project)
        .select_related("destination", "case", "dataset_version")
        .order_by("-created_at", "-pk")
    )
    case_code = request.GET.get("case", "").strip()
    if case_code:
        items = items.filter(case__code=case_code)
    destination = request.GET.get("destination", "").strip()
    if destination.isdigit():
        items = items.filter(destination_id=int(destination))
    status = request.GET.get("status", "").strip()
    if status in OutboxItem.Status.values:
        items = items.filter(status=status)
    return items, case_code, destination, status


@login_required
@require_http_methods(["GET", "POST"])
def outbox(request, slug: str):
    project = managed_project_or_404(request, slug)
    if request.method == "POST":
        return _post(request, project)
    items, case_code, destination, status = _items(project, request)
    return render(
        request,
        "outbox/outbox.html",
        {
            "project": project,
            "destinations": project.writeback_destinations.select_related(
                "connection", "marked_by"
            ),
            "items": items[:PAGE_ROWS],
            "count": items.count(),
            "page_rows": PAGE_ROWS,
            "case_filter": case_code,
            "destination_filter": destination,
            "status_filter": status,
            "statuses": OutboxItem.Status.choices,
            "destination_form": DestinationForm(project=project),
            "send_case_form": SendCaseForm(project=project, initial={"case": case_code}),
            "send_version_form": SendVersionForm(project=project),
            "has_connections": project.pacs_connections.exists(),
            "may_reidentify": services.may_reidentify(request.user),
            "queue_jobs": _queue_jobs(project),
            "writeback_reads": getattr(project, "protocol", None)
            and project.protocol.get_writeback_reads_display(),
        },
    )


def _back(request, project):
    url = f"{request.path}"
    query = request.POST.get("back", "")
    return redirect(f"{url}?{query}" if query else url)


def _post(request, project):
    form_name = request.POST.get("form")
    handler = {
        "destination": _add_destination,
        "mark": _mark,
        "send-case": _send_case,
        "send-version": _send_version,
        "retry": _retry,
        "cancel": _cancel,
    }.get(form_name)
    if handler is None:
        messages.error(request, _("Unknown form."))
        return _back(request, project)
    handler(request, project)
    return _back(request, project)


def _add_destination(request, project) -> None:
    form = DestinationForm(request.POST, project=project)
    if not form.is_valid():
        flash_form_errors(request, form)
        return
    with transaction.atomic():
        destination = form.save(commit=False)
        destination.project = project
        destination.created_by = request.user
        destination.save()
        audit.record(
            "outbox.destination_added",
            actor=request.user,
            obj=destination,
            project_id=project.pk,
            data={
                "name": destination.name,
                "kind": destination.kind,
                "address": destination.connection.address,
            },
        )
    messages.success(request, _("Destination saved."))


def _destination(request, project) -> Destination:
    return get_object_or_404(Destination, project=project, pk=request.POST.get("destination"))


def _mark(request, project) -> None:
    destination = _destination(request, project)
    if destination.kind != Destination.Kind.HOSPITAL:
        messages.error(request, _("Only a hospital PACS is marked inside the hospital."))
        return
    inside = request.POST.get("inside") == "1"
    services.mark_inside_hospital(destination, request.user, inside)
    messages.success(
        request,
        _("%(name)s is marked inside the hospital.") % {"name": destination.name}
        if inside
        else _("%(name)s is no longer marked inside the hospital.") % {"name": destination.name},
    )


def _send_case(request, project) -> None:
    form = SendCaseForm(request.POST, project=project)
    if not form.is_valid():
        flash_form_errors(request, form)
        return
    case, destination = form.cleaned_data["case"], form.cleaned_data["destination"]
    job = services.send_case(case, destination, request.user)
    messages.success(
        request,
        _(
            "Case %(case)s is being prepared for %(name)s (job %(job)s); its objects "
            "appear here when queued."
        )
        % {"case": case.code, "name": destination.name, "job": job.pk},
    )


def _send_version(request, project) -> None:
    form = SendVersionForm(request.POST, project=project)
    if not form.is_valid():
        flash_form_errors(request, form)
        return
    version, destination = form.cleaned_data["version"], form.cleaned_data["destination"]
    jobs.enqueue(
        "outbox.queue_version",
        params={"version": version.pk, "destination": destination.pk},
        project=project,
        user=request.user,
    )
    messages.success(
        request,
        _("Version %(v)s is being prepared for %(name)s; its objects appear here when queued.")
        % {"v": version.version, "name": destination.name},
    )


def _item(request, project) -> OutboxItem:
    return get_object_or_404(OutboxItem, project=project, pk=request.POST.get("item"))


def _retry(request, project) -> None:
    services.retry(_item(request, project), request.user)
    messages.success(request, _("Queued again."))


def _cancel(request, project) -> None:
    services.cancel(_item(request, project), request.user)
    messages.success(request, _("Cancelled."))
