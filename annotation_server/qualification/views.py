"""Qualification pages. Readers: "my qualification" (start or continue an
attempt; its reads open in the normal workstation at /read/<task_id>/) and the
result of a submitted attempt with its misses. Managers: the test's thresholds,
its cases and their reference, and every reader's attempts.

The POST views are form handling: a refused start, case or reference goes back to
the form's page as a message (post, redirect, get), so they catch the service's
errors themselves; anything else takes the one domain-error path.
URLs: qualification/urls.py."""

from __future__ import annotations

import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, OuterRef
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from annotation_server.projects.models import Case, Project
from annotation_server.projects.permissions import (
    MANAGE,
    READ,
    has_project_perm,
    managed_project_or_404,
)
from annotation_server.projects.schema import SchemaError
from annotation_server.qualification import services as q
from annotation_server.qualification.models import QualificationAttempt, QualificationTest
from annotation_server.reading.anonymise import reader_identity
from annotation_server.reading.models import ReadingTask


class ThresholdForm(forms.ModelForm):
    class Meta:
        model = QualificationTest
        fields = ["name", *q.THRESHOLD_FIELDS]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a form posted without the draw keeps the test's (new tests: unseen cases)
        self.fields["draw"].required = False

    def clean_draw(self):
        value = self.cleaned_data.get("draw")
        if value:
            return value
        if self.instance.pk:
            return self.instance.draw
        return QualificationTest.Draw.UNSEEN

    def clean_max_fp_per_case(self):
        value = self.cleaned_data["max_fp_per_case"]
        if value < 0:
            raise ValidationError(gettext_lazy("Must not be negative."))
        return value

    def clean_max_attempts(self):
        value = self.cleaned_data["max_attempts"]
        if value < 1:
            raise ValidationError(gettext_lazy("At least one attempt."))
        return value


def _project_for_reader(request, slug: str) -> Project:
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    if not has_project_perm(request.user, project, READ):
        raise PermissionDenied(_("Only the project's readers take its qualification test."))
    return project


def _tests(project: Project):
    return QualificationTest.objects.filter(project=project).order_by("-active", "pk")


@login_required
def my_qualification(request, slug: str):
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    if not has_project_perm(request.user, project, READ):
        if has_project_perm(request.user, project, MANAGE):
            return redirect("qualification-manage", slug=slug)
        return render(
            request, "qualification/qualification.html", {"project": project, "not_reader": True}
        )
    test = q.active_test(project)
    status = q.status_for(test, request.user) if test else None
    tasks = []
    if status and status["open"]:
        tasks = list(status["open"].tasks.select_related("case").order_by("case__code", "pk"))
    per_attempt = q.cases_per_attempt(test) if test else None
    return render(
        request,
        "qualification/qualification.html",
        {
            "project": project,
            "test": test,
            "status": status,
            "tasks": tasks,
            "per_attempt": per_attempt,
        },
    )


@login_required
@require_POST
def start(request, slug: str):
    project = _project_for_reader(request, slug)
    test = q.active_test(project)
    if test is None:
        raise Http404("No active qualification test.")
    try:
        attempt = q.start_attempt(test, request.user)
    except q.QualificationError as exc:
        messages.error(request, str(exc))
        return redirect("qualification", slug=slug)
    first = attempt.tasks.exclude(state="submitted").order_by("case__code", "pk").first()
    if first is not None and request.POST.get("open"):
        return redirect(f"/read/{first.pk}/")
    return redirect("qualification", slug=slug)


@login_required
def attempt_result(request, slug: str, attempt_id: int):
    project = get_object_or_404(Project.objects.visible_to(request.user), slug=slug)
    attempt = get_object_or_404(
        QualificationAttempt.objects.select_related("test", "reader__profile"),
        pk=attempt_id,
        test__project=project,
    )
    manages = has_project_perm(request.user, project, MANAGE)
    if attempt.reader_id != request.user.pk and not manages:
        raise Http404("No such attempt.")
    submitted = attempt.submitted_at is not None
    shown = q.feedback(attempt, request.user) if submitted else None
    return render(
        request,
        "qualification/qualification_result.html",
        {
            "project": project,
            "attempt": attempt,
            "test": attempt.test,
            "manages": manages,
            "identity": reader_identity(attempt.reader) if manages else None,
            "submitted": submitted,
            "feedback": shown,
            "details": shown["details"] if shown else {},
            "cases": list(
                attempt.tasks.select_related("case")
                .order_by("case__code")
                .values_list("case__code", flat=True)
            ),
        },
    )


@login_required
def manage(request, slug: str):
    project = managed_project_or_404(request, slug)
    tests = list(_tests(project))
    test = tests[0] if tests else None
    context = {"project": project, "tests": tests, "test": test}
    if test is not None:
        cases = list(test.cases.select_related("site").order_by("code"))
        counts = q.reference_counts(cases)
        for case in cases:
            case.reference_count = counts.get(case.pk, 0)
        per_attempt = q.cases_per_attempt(test, len(cases))
        context.update(
            form=ThresholdForm(instance=test),
            cases=cases,
            per_attempt=per_attempt,
            # "unseen": every attempt allowed must find enough cases not read before
            too_few=test.draw == test.Draw.UNSEEN and len(cases) < per_attempt * test.max_attempts,
            rows=q.overview(test),
            addable=Case.objects.filter(project=project, is_qualification=False)
            .exclude(Exists(ReadingTask.objects.filter(case=OuterRef("pk"), attempt__isnull=True)))
            .order_by("code"),
            adjudicated=Case.objects.filter(
                state__in=(Case.State.ADJUDICATED, Case.State.FROZEN),
                project_id__in=_managed_ids(request.user),
                # a reference only carries over between projects labelling alike
                project__label_schema__key=project.label_schema.key,
            )
            .select_related("project")
            .order_by("project__slug", "code"),
        )
    else:
        context["form"] = ThresholdForm(initial={"name": _("Qualification set")})
    return render(request, "qualification/qualification_manage.html", context)


def _managed_ids(user) -> set[int]:
    from annotation_server.projects.permissions import project_ids

    return project_ids(user, MANAGE)


@login_required
@require_POST
def save_settings(request, slug: str):
    project = managed_project_or_404(request, slug)
    test = _tests(project).first()
    form = ThresholdForm(request.POST, instance=test)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else field
            messages.error(request, f"{label}: {' '.join(errors)}")
        return redirect("qualification-manage", slug=slug)
    data = form.cleaned_data
    if test is None:
        q.create_test(project, by=request.user, **data)
        messages.success(request, _("Qualification test created."))
    else:
        name = data.pop("name")
        if name != QualificationTest.objects.get(pk=test.pk).name:
            QualificationTest.objects.filter(pk=test.pk).update(name=name)
        test.refresh_from_db()
        q.update_thresholds(test, by=request.user, **data)
        messages.success(request, _("Qualification settings saved."))
    return redirect("qualification-manage", slug=slug)


@login_required
@require_POST
def edit_cases(request, slug: str):
    project = managed_project_or_404(request, slug)
    test = get_object_or_404(_tests(project), pk=request.POST.get("test") or 0)
    case = get_object_or_404(Case, project=project, pk=request.POST.get("case") or 0)
    try:
        if request.POST.get("action") == "remove":
            q.remove_case(test, case, by=request.user)
        else:
            q.add_case(test, case, by=request.user)
    except q.QualificationError as exc:
        messages.error(request, str(exc))
    return redirect("qualification-manage", slug=slug)


@login_required
@require_POST
def upload_reference(request, slug: str):
    """A JSON file {"cases": {"<case code>": [finding, ...], ...}} (see
    services.import_reference for a finding's fields)."""
    project = managed_project_or_404(request, slug)
    upload = request.FILES.get("reference")
    if upload is None:
        messages.error(request, _("Choose a reference file (JSON) to import."))
        return redirect("qualification-manage", slug=slug)
    try:
        payload = json.loads(upload.read().decode("utf-8"))
        n = q.import_reference_payload(project, payload, by=request.user, source=upload.name)
    except (ValueError, q.QualificationError) as exc:
        messages.error(request, str(exc))
    except SchemaError as exc:
        messages.error(request, "; ".join(exc.errors[:10]))
    else:
        messages.success(
            request,
            ngettext("Reference imported: %(n)s finding.", "Reference imported: %(n)s findings.", n)
            % {"n": n},
        )
    return redirect("qualification-manage", slug=slug)


@login_required
@require_POST
def copy_reference(request, slug: str):
    project = managed_project_or_404(request, slug)
    target = get_object_or_404(Case, project=project, pk=request.POST.get("target") or 0)
    source = get_object_or_404(
        Case, pk=request.POST.get("source") or 0, project_id__in=_managed_ids(request.user)
    )
    try:
        n = q.copy_reference(source, target, by=request.user)
    except q.QualificationError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            ngettext(
                "%(n)s reference finding copied from %(source)s to %(target)s.",
                "%(n)s reference findings copied from %(source)s to %(target)s.",
                n,
            )
            % {"n": n, "source": source, "target": target.code},
        )
    return redirect("qualification-manage", slug=slug)
