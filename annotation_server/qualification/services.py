"""Qualification: a reader reads the project's qualification set blind, like a
real read; when the attempt's last read is submitted it is scored against the
cases' reference (qc.scoring, framework-free) and the reader qualifies if the
score meets the manager's thresholds. Attempts are kept; only qualified readers
get real assignments while the project has an active test.

The reference of a qualification case is its current included ReferenceFindings.
Managers give it one by importing JSON (`import_reference`, also the
`import_qualification_reference` command) or by copying an adjudicated case's
reference standard (`copy_reference`). The reference reaches a reader only as
a count of their own submitted attempt's misses by finding type; where those
misses lie (case, slice, centre) is shown only once the reader has passed or
used every attempt (`reveals_positions`), so an attempt cannot be retaken by
marking the positions a failed one listed. Retakes also draw cases the reader
has not read before (`draw_cases`). Every write of that reference goes
through adjudication.services.reference, the one module that writes the
reference standard.

Reading calls back into this module only through the project-level hook
"reading.attempt_read_submitted" (annotation_server.registry): `after_submit`.
"""

from __future__ import annotations

import math
import random
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.translation import get_language, gettext, ngettext

from annotation_server.accounts.models import Role
from annotation_server.adjudication.marks import (
    grid_for_series,
    marks_for_reference,
    marks_for_tasks,
)
from annotation_server.adjudication.models import ReferenceFinding
from annotation_server.adjudication.services import reference as reference_standard
from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.projects import schema as schema_rules
from annotation_server.projects.models import Case, Membership, Project
from annotation_server.projects.permissions import MANAGE, READ, has_project_perm
from annotation_server.qualification.models import QualificationAttempt, QualificationTest
from annotation_server.reading.anonymise import reader_identity
from annotation_server.reading.geometry import validate_geometry
from annotation_server.reading.models import ReadingTask
from qc.scoring import (
    KAPPA_NO_PAIRS,
    KAPPA_NO_VARIATION,
    KAPPA_TOO_FEW_PAIRS,
    CaseRead,
    score_qualification,
)

THRESHOLD_FIELDS = (
    "min_sensitivity",
    "max_fp_per_case",
    "min_kappa",
    "max_attempts",
    "cases_per_attempt",
    "draw",
    "active",
)


class QualificationError(DomainError):
    """The attempt cannot start or the case cannot join the set; the message says why."""

    status = 409  # the test's or the reader's state does not allow it
    code = "qualification"


class ReferenceImportError(QualificationError):
    """The reference given for qualification cases (imported or copied) is refused."""

    status = 400  # the reference sent is wrong
    code = "invalid_reference"


# ---------------------------------------------------------------- manager side


def active_test(project: Project) -> QualificationTest | None:
    return QualificationTest.objects.filter(project=project, active=True).order_by("pk").first()


def _require_manager(user, project: Project) -> None:
    if user is not None and not has_project_perm(user, project, MANAGE):
        raise PermissionDenied(
            gettext("Only the project's dataset managers can change qualification.")
        )


@transaction.atomic
def create_test(project: Project, *, name: str, by=None, **thresholds) -> QualificationTest:
    _require_manager(by, project)
    test = QualificationTest(project=project, name=name, **thresholds)
    test.full_clean(exclude=["cases"])
    test.save()
    audit.record(
        "qualification.test_created",
        actor=by,
        obj=test,
        project_id=project.pk,
        data={"name": name, **{k: getattr(test, k) for k in THRESHOLD_FIELDS}},
    )
    return test


@transaction.atomic
def update_thresholds(test: QualificationTest, *, by=None, **values) -> QualificationTest:
    """Change the pass thresholds (and attempts allowed, active). Past attempts keep
    the verdict they got; the new thresholds apply to attempts scored from now on."""
    _require_manager(by, test.project)
    unknown = set(values) - set(THRESHOLD_FIELDS)
    if unknown:
        raise ValidationError(
            gettext("Unknown settings: %(names)s") % {"names": ", ".join(sorted(unknown))}
        )
    before = {k: getattr(test, k) for k in values}
    for key, value in values.items():
        setattr(test, key, value)
    if test.max_fp_per_case is not None and test.max_fp_per_case < 0:
        raise ValidationError({"max_fp_per_case": gettext("Must not be negative.")})
    if test.max_attempts is not None and test.max_attempts < 1:
        raise ValidationError({"max_attempts": gettext("At least one attempt.")})
    test.full_clean(exclude=["cases", "project"])
    test.save()
    audit.record(
        "qualification.thresholds_changed",
        actor=by,
        obj=test,
        project_id=test.project_id,
        data={"before": before, "after": values},
    )
    return test


@transaction.atomic
def add_case(test: QualificationTest, case: Case, *, by=None) -> None:
    """Put a case into the qualification set: it becomes a qualification case and
    is never assigned as a real read."""
    _require_manager(by, test.project)
    if case.project_id != test.project_id:
        raise QualificationError(gettext("The case belongs to another project."))
    if ReadingTask.objects.filter(case=case, attempt__isnull=True).exists():
        raise QualificationError(
            gettext("Case %(code)s already has real reads.") % {"code": case.code}
        )
    Case.objects.filter(pk=case.pk).update(is_qualification=True)
    case.is_qualification = True
    test.cases.add(case)
    audit.record(
        "qualification.case_added",
        actor=by,
        obj=test,
        project_id=test.project_id,
        data={"case": case.code},
    )


@transaction.atomic
def remove_case(test: QualificationTest, case: Case, *, by=None) -> None:
    _require_manager(by, test.project)
    test.cases.remove(case)
    audit.record(
        "qualification.case_removed",
        actor=by,
        obj=test,
        project_id=test.project_id,
        data={"case": case.code},
    )


def _reference_rows(case: Case):
    return ReferenceFinding.objects.filter(
        case=case, is_current=True, status=ReferenceFinding.Status.INCLUDED
    )


def reference_counts(cases) -> dict[int, int]:
    rows = (
        ReferenceFinding.objects.filter(
            case__in=cases, is_current=True, status=ReferenceFinding.Status.INCLUDED
        )
        .values("case_id")
        .annotate(n=Count("id"))
    )
    return {r["case_id"]: r["n"] for r in rows}


def _centre(geometry: dict) -> tuple[float | None, float | None, float | None]:
    centre = geometry.get("centre_mm") if isinstance(geometry, dict) else None
    if not centre:
        return (None, None, None)
    return tuple(float(v) for v in centre)


@transaction.atomic
def import_reference(case: Case, findings: list[dict], *, by=None, source: str = "") -> int:
    """Set a qualification case's reference from plain data: a list of
    {"finding_type", "geometry", "attributes"?, "diameter_mm"?}. An empty list
    is a valid reference (a normal case: every mark on it is a false positive).
    Replaces the case's previous reference. Returns the number of findings."""
    _require_manager(by, case.project)
    if not case.is_qualification:
        raise ReferenceImportError(
            gettext(
                "Case %(code)s is not a qualification case; its reference comes from arbitration."
            )
            % {"code": case.code}
        )
    if not isinstance(findings, list):
        raise ReferenceImportError(gettext("The reference of a case is a list of findings."))
    definition = case.project.label_schema.definition
    errors: list[str] = []
    rows = []
    now = timezone.now()
    for i, item in enumerate(findings):
        if not isinstance(item, dict):
            errors.append(f"{case.code}[{i}]: must be an object")
            continue
        try:
            kind = validate_geometry(item.get("geometry"))
            schema_rules.validate_finding(
                definition,
                item.get("finding_type"),
                kind,
                item.get("attributes") or {},
                complete=False,
            )
        except schema_rules.SchemaError as exc:
            errors.extend(f"{case.code}[{i}]: {e}" for e in exc.errors)
            continue
        x, y, z = _centre(item["geometry"])
        rows.append(
            {
                "finding_type": item["finding_type"],
                "geometry": item["geometry"],
                "centre_x_mm": x,
                "centre_y_mm": y,
                "centre_z_mm": z,
                "diameter_mm": item.get("diameter_mm"),
                "attributes": item.get("attributes") or {},
                "reason_text": source,
            }
        )
    if errors:
        raise schema_rules.SchemaError(errors)
    written, withdrawn = reference_standard.replace_with_imported(case, rows, by=by, when=now)
    audit.record(
        "qualification.reference_imported",
        actor=by,
        obj=case,
        project_id=case.project_id,
        data={"findings": written, "replaced": withdrawn, "source": source},
    )
    return written


def import_reference_payload(project: Project, payload, *, by=None, source: str = "") -> int:
    """Import {"cases": {code: [finding, ...]}} into the project's qualification
    cases, all or nothing."""
    if not isinstance(payload, dict) or not isinstance(payload.get("cases"), dict):
        raise ReferenceImportError(
            gettext('Expected a JSON object {"cases": {"<case code>": [...]}}.')
        )
    total = 0
    with transaction.atomic():
        for code, findings in payload["cases"].items():
            case = Case.objects.filter(project=project, code=code).first()
            if case is None:
                raise ReferenceImportError(
                    gettext("No case %(code)s in this project.") % {"code": code}
                )
            total += import_reference(case, findings, by=by, source=source)
    return total


def _geometry_signature(series) -> tuple:
    series = type(series).objects.get(pk=series.pk)  # as stored, not as cached
    positions = tuple(
        tuple(round(float(v), 3) for v in (p or ()))
        for p in series.instances.order_by("slice_index").values_list("position", flat=True)
    )
    return (
        series.rows,
        series.columns,
        series.num_instances,
        series.pixel_spacing_mm,
        series.orientation,
        positions,
    )


@transaction.atomic
def copy_reference(source: Case, target: Case, *, by=None) -> int:
    """Give a qualification case the reference standard of an adjudicated case
    showing the same images (same grid: size, spacing, orientation, positions)."""
    _require_manager(by, target.project)
    if by is not None and not has_project_perm(by, source.project, MANAGE):
        raise PermissionDenied(gettext("You do not manage the source case's project."))
    if source.state not in (Case.State.ADJUDICATED, Case.State.FROZEN):
        raise ReferenceImportError(
            gettext("Case %(code)s is not adjudicated.") % {"code": source.code}
        )
    if not target.is_qualification:
        raise ReferenceImportError(
            gettext("Case %(code)s is not a qualification case.") % {"code": target.code}
        )
    if source.pk == target.pk:
        raise ReferenceImportError(gettext("Source and target are the same case."))
    if _geometry_signature(source.series) != _geometry_signature(target.series):
        raise ReferenceImportError(
            gettext(
                "Cases %(source)s and %(target)s do not show the same images "
                "(their series' geometry differs)."
            )
            % {"source": source.code, "target": target.code}
        )
    now = timezone.now()
    originals = list(_reference_rows(source).order_by("pk"))
    rows = [
        {
            "finding_type": r.finding_type,
            "geometry": r.geometry,
            "centre_x_mm": r.centre_x_mm,
            "centre_y_mm": r.centre_y_mm,
            "centre_z_mm": r.centre_z_mm,
            "diameter_mm": r.diameter_mm,
            "attributes": r.attributes,
            "reason_text": f"copied from {source} reference {r.ref_key} r{r.revision}",
            "match_rule": r.match_rule,
            "match_threshold": r.match_threshold,
        }
        for r in originals
    ]
    written, withdrawn = reference_standard.replace_with_imported(target, rows, by=by, when=now)
    audit.record(
        "qualification.reference_copied",
        actor=by,
        obj=target,
        project_id=target.project_id,
        data={
            "from_case": source.pk,
            "from_refs": [str(r.ref_key) for r in originals],
            "findings": written,
            "replaced": withdrawn,
        },
    )
    return written


# ----------------------------------------------------------------- reader side


def attempts_of(test: QualificationTest, reader) -> list[QualificationAttempt]:
    return list(QualificationAttempt.objects.filter(test=test, reader=reader).order_by("number"))


def open_attempt(test: QualificationTest, reader) -> QualificationAttempt | None:
    return (
        QualificationAttempt.objects.filter(test=test, reader=reader, submitted_at__isnull=True)
        .order_by("-number")
        .first()
    )


def _reader_membership(project: Project, reader) -> Membership | None:
    return Membership.objects.filter(project=project, user=reader, role=Role.READER).first()


def status_for(test: QualificationTest, reader) -> dict:
    """What the reader's qualification page needs: attempts, what they may do next."""
    attempts = attempts_of(test, reader)
    membership = _reader_membership(test.project, reader)
    current = next((a for a in attempts if a.submitted_at is None), None)
    qualified = bool(membership and membership.qualified)
    used = len(attempts)
    return {
        "attempts": attempts,
        "open": current,
        "qualified": qualified,
        "attempts_left": max(test.max_attempts - used, 0),
        "can_start": (
            test.active
            and current is None
            and not qualified
            and used < test.max_attempts
            and membership is not None
        ),
    }


@transaction.atomic
def start_attempt(test: QualificationTest, reader) -> QualificationAttempt:
    """Open the reader's next attempt: one blind read per qualification case. An
    attempt already open is returned as it is (continue, not restart)."""
    project = test.project
    if not has_project_perm(reader, project, READ):
        raise PermissionDenied(gettext("Only the project's readers take its qualification test."))
    membership = (
        Membership.objects.select_for_update()
        .filter(project=project, user=reader, role=Role.READER)
        .first()
    )
    if membership is None:
        raise PermissionDenied(gettext("Only the project's readers take its qualification test."))
    if not test.active:
        raise QualificationError(gettext("This qualification test is not active."))
    current = open_attempt(test, reader)
    if current is not None:
        return current
    if membership.qualified:
        raise QualificationError(gettext("You are already qualified for this project."))
    used = QualificationAttempt.objects.filter(test=test, reader=reader).count()
    if used >= test.max_attempts:
        raise QualificationError(
            ngettext(
                "The %(n)s attempt allowed is used; ask the dataset manager.",
                "All %(n)s attempts are used; ask the dataset manager.",
                test.max_attempts,
            )
            % {"n": test.max_attempts}
        )
    cases = draw_cases(test, reader)
    number = (
        QualificationAttempt.objects.filter(test=test, reader=reader).aggregate(n=Max("number"))[
            "n"
        ]
        or 0
    ) + 1
    attempt = QualificationAttempt.objects.create(test=test, reader=reader, number=number)
    for case in cases:
        ReadingTask.objects.create(case=case, reader=reader, phase=1, attempt=attempt)
    audit.record(
        "qualification.attempt_started",
        actor=reader,
        obj=attempt,
        project_id=project.pk,
        data={"test": test.pk, "number": number, "cases": [c.code for c in cases]},
    )
    return attempt


def seen_case_ids(test: QualificationTest, reader) -> set[int]:
    """The cases this reader was given in earlier attempts at this test."""
    return set(
        ReadingTask.objects.filter(attempt__test=test, attempt__reader=reader).values_list(
            "case_id", flat=True
        )
    )


def cases_per_attempt(test: QualificationTest, total: int | None = None) -> int:
    """How many cases one attempt reads: the manager's number, else the set
    shared out evenly over the attempts allowed (at least one)."""
    if total is None:
        total = test.cases.count()
    if test.cases_per_attempt:
        if test.draw == test.Draw.UNSEEN:  # too few unseen cases is refused, not shrunk
            return test.cases_per_attempt
        return min(test.cases_per_attempt, total)
    if test.draw == test.Draw.SAME:
        return total
    return max(total // max(test.max_attempts, 1), 1)


def draw_cases(test: QualificationTest, reader, *, rng: random.Random | None = None) -> list[Case]:
    """The cases of the reader's next attempt, drawn as the manager set.

    "unseen" (the default) draws only cases the reader has not read in an
    earlier attempt and refuses when too few are left; "unseen_first" tops up
    with the cases read longest ago; "same" gives every attempt the same cases.
    A draw includes at least one case with reference findings when the set has
    one (an attempt of normal cases only would measure no sensitivity)."""
    rng = rng or random.SystemRandom()
    cases = list(test.cases.order_by("code", "pk"))
    if not cases:
        raise QualificationError(gettext("The qualification set has no cases yet."))
    counts = reference_counts(cases)
    if not counts:
        raise QualificationError(gettext("The qualification cases have no reference yet."))
    k = cases_per_attempt(test, len(cases))
    if test.draw == test.Draw.SAME:
        return cases[:k]
    seen = seen_case_ids(test, reader)
    unseen = [c for c in cases if c.pk not in seen]
    if test.draw == test.Draw.UNSEEN and len(unseen) < k:
        raise QualificationError(
            ngettext(
                "Only %(left)s case you have not read is left in the qualification set and "
                "an attempt needs %(k)s; ask the dataset manager to add cases.",
                "Only %(left)s cases you have not read are left in the qualification set and "
                "an attempt needs %(k)s; ask the dataset manager to add cases.",
                len(unseen),
            )
            % {"left": len(unseen), "k": k}
        )
    rng.shuffle(unseen)
    drawn = unseen[:k]
    if len(drawn) < k:  # unseen_first: top up with the cases read longest ago
        last_read: dict[int, int] = {}
        for case_id, number in ReadingTask.objects.filter(
            attempt__test=test, attempt__reader=reader
        ).values_list("case_id", "attempt__number"):
            last_read[case_id] = max(number, last_read.get(case_id, 0))
        again = sorted((c for c in cases if c.pk in seen), key=lambda c: last_read.get(c.pk, 0))
        drawn += again[: k - len(drawn)]
    if not any(counts.get(c.pk) for c in drawn):
        pool = [c for c in (unseen or cases) if counts.get(c.pk) and c not in drawn]
        if pool:
            drawn[-1] = rng.choice(pool)
    return sorted(drawn, key=lambda c: (c.code, c.pk))


def after_submit(task: ReadingTask, actor) -> None:
    """Called when a qualification read is submitted: the last one scores the attempt."""
    attempt = QualificationAttempt.objects.select_for_update().get(pk=task.attempt_id)
    if attempt.submitted_at is not None:
        return
    if attempt.tasks.exclude(state=ReadingTask.State.SUBMITTED).exists():
        return
    score_attempt(attempt, actor=actor)


def _scored_attributes(definition: dict) -> dict[str, str | None]:
    """The schema's enum and ordinal attributes, the ones kappa fits, with their
    kappa weights: none for categories, linear for ordinal scales (a 3 against a
    4 is a smaller disagreement than a 1 against a 5)."""
    keys: dict[str, str | None] = {}
    for ftype in definition.get("finding_types", []):
        for attr in ftype.get("attributes", []):
            if attr["key"] in keys:
                continue
            if attr.get("kind") == "ordinal":
                keys[attr["key"]] = "linear"
            elif attr.get("kind") == "enum":
                keys[attr["key"]] = None
    return keys


def _slice_of(mark, grid) -> int | None:
    """The slice to show a mark on: the middle of its drawn slices, else its centre."""
    slices = sorted(index for index, _points in (mark.shapes or ()))
    if slices:
        return int(slices[len(slices) // 2])
    if grid is not None and mark.centre_mm is not None:
        try:
            return int(round(grid.to_index(*mark.centre_mm)[0]))
        except (ValueError, ZeroDivisionError, IndexError):
            return None
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def passes(test: QualificationTest, sensitivity, fp_per_case, kappa) -> dict[str, bool | None]:
    """Each criterion's verdict (None: not gated or not computable)."""
    verdict: dict[str, bool | None] = {
        "sensitivity": sensitivity is not None and sensitivity >= test.min_sensitivity,
        "fp_per_case": fp_per_case is not None and fp_per_case <= test.max_fp_per_case,
        "kappa": None,
    }
    if test.min_kappa is not None and kappa is not None:
        verdict["kappa"] = kappa >= test.min_kappa
    return verdict


@transaction.atomic
def score_attempt(attempt: QualificationAttempt, *, actor=None) -> QualificationAttempt:
    """Score a finished attempt against the reference; store scores, misses and
    false positives; qualify the reader if they pass."""
    test = attempt.test
    project = Project.objects.select_related("protocol", "label_schema").get(pk=test.project_id)
    protocol = project.protocol
    tasks = list(attempt.tasks.select_related("case__series").order_by("case__code", "pk"))
    case_reads = []
    marks_by_id: dict[tuple[int, str], Any] = {}
    grids: dict[int, Any] = {}
    codes: dict[int, str] = {}
    for task in tasks:
        case = task.case
        grid = grid_for_series(case.series)
        reference = marks_for_reference(case, grid)
        read = marks_for_tasks([task], grid)
        grids[case.pk] = grid
        codes[case.pk] = case.code
        for mark in (*reference, *read):
            marks_by_id[(case.pk, str(mark.id))] = mark
        case_reads.append(CaseRead(case_id=case.pk, reference=reference, read=read, grid=grid))
    score = score_qualification(
        case_reads,
        protocol.match_rule,
        protocol.match_threshold,
        _scored_attributes(project.label_schema.definition),
    )
    misses = []
    for case_id, mark_id, centre, finding_type in score.misses:
        mark = marks_by_id.get((case_id, str(mark_id)))
        misses.append(
            {
                "case_id": case_id,
                "case": codes.get(case_id, ""),
                "reference_id": str(mark_id),
                "finding_type": finding_type,
                "centre_mm": _plain(list(centre) if centre is not None else None),
                "slice_index": _slice_of(mark, grids.get(case_id)) if mark else None,
            }
        )
    false_positives = []
    for case_id, mark_id, centre in score.false_positives:
        mark = marks_by_id.get((case_id, str(mark_id)))
        false_positives.append(
            {
                "case_id": case_id,
                "case": codes.get(case_id, ""),
                "finding_id": str(mark_id),
                "finding_type": mark.finding_type if mark else "",
                "centre_mm": _plain(list(centre) if centre is not None else None),
                "slice_index": _slice_of(mark, grids.get(case_id)) if mark else None,
            }
        )
    verdict = passes(test, score.sensitivity, score.fp_per_case, score.kappa_mean)
    passed = bool(
        verdict["sensitivity"] and verdict["fp_per_case"] and verdict["kappa"] is not False
    )
    attempt.sensitivity = score.sensitivity
    attempt.fp_per_case = score.fp_per_case
    attempt.kappa = score.kappa_mean
    attempt.passed = passed
    attempt.submitted_at = timezone.now()
    attempt.details = {
        "score": score.as_dict(),
        "misses": misses,
        "false_positives": false_positives,
        "verdict": verdict,
        "thresholds": {
            "min_sensitivity": test.min_sensitivity,
            "max_fp_per_case": test.max_fp_per_case,
            "min_kappa": test.min_kappa,
        },
        "match_rule": protocol.match_rule,
        "match_threshold": protocol.match_threshold,
    }
    attempt.save()
    if passed:
        Membership.objects.filter(project=project, user=attempt.reader, role=Role.READER).update(
            qualified=True
        )
    audit.record(
        "qualification.scored",
        actor=actor,
        obj=attempt,
        project_id=project.pk,
        data={
            "reader": attempt.reader_id,
            "number": attempt.number,
            "sensitivity": _plain(score.sensitivity),
            "fp_per_case": _plain(score.fp_per_case),
            "kappa": _plain(score.kappa_mean),
            "passed": passed,
        },
    )
    if passed:
        audit.record(
            "qualification.reader_qualified",
            actor=actor,
            obj=attempt,
            project_id=project.pk,
            data={"reader": attempt.reader_id},
        )
    return attempt


# ------------------------------------------------------------------- feedback


def reveals_positions(attempt: QualificationAttempt, viewer) -> bool:
    """Whether `viewer` may see where an attempt's misses and false positives lie.

    The project's managers always may. The reader may once the attempt is scored
    and they can no longer retake the test: they passed (or are qualified), or
    every attempt allowed is used and none is open. Before that the reader
    learns only how many findings of each kind they missed."""
    if attempt.submitted_at is None:
        return False
    test = attempt.test
    if viewer is not None and has_project_perm(viewer, test.project, MANAGE):
        return True
    if viewer is None or attempt.reader_id != viewer.pk:
        return False
    if attempt.passed:
        return True
    mine = QualificationAttempt.objects.filter(test=test, reader_id=attempt.reader_id)
    if mine.filter(submitted_at__isnull=True).exists():
        return False
    membership = _reader_membership(test.project, attempt.reader)
    if membership is not None and membership.qualified:
        return True
    return mine.count() >= test.max_attempts


def _by_type(rows: list[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows or ():
        key = row.get("finding_type") or ""
        counts[key] = counts.get(key, 0) + 1
    return counts


def redacted_details(details: dict) -> dict:
    """An attempt's details without any position: scores, verdict, thresholds,
    match rule, and the misses and false positives counted by finding type."""
    if not details:
        return {}
    score = dict(details.get("score") or {})
    for key in ("misses", "false_positives", "per_case"):
        score.pop(key, None)
    return {
        "score": score,
        "verdict": details.get("verdict"),
        "thresholds": details.get("thresholds"),
        "match_rule": details.get("match_rule"),
        "match_threshold": details.get("match_threshold"),
        "missed_by_type": _by_type(details.get("misses")),
        "false_positives_by_type": _by_type(details.get("false_positives")),
        "positions_hidden": True,
    }


def _lang() -> str:
    return "zh-hans" if (get_language() or "").lower().startswith("zh") else "en"


def _label_text(label, fallback: str) -> str:
    if isinstance(label, dict):
        return label.get(_lang()) or label.get("en") or fallback
    return fallback


def schema_labels(definition: dict) -> tuple[dict[str, str], dict[str, str]]:
    """(finding type key -> label, attribute key -> label) in the UI language."""
    types: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for ftype in definition.get("finding_types", []):
        types[ftype["key"]] = _label_text(ftype.get("label"), ftype["key"])
        for attr in ftype.get("attributes", []):
            attributes.setdefault(attr["key"], _label_text(attr.get("label"), attr["key"]))
    for attr in definition.get("case_attributes", []) or []:
        attributes.setdefault(attr["key"], _label_text(attr.get("label"), attr["key"]))
    return types, attributes


def kappa_reason_text(code: str | None, pairs: int | None) -> str:
    """Why an attribute's kappa could not be computed, in words."""
    if code == KAPPA_NO_PAIRS:
        return gettext(
            "no finding you marked matched the reference, so there is nothing to compare"
        )
    if code == KAPPA_TOO_FEW_PAIRS:
        n = pairs or 0
        return ngettext(
            "only %(n)s matched finding has this attribute filled in on both sides; "
            "kappa needs at least two",
            "only %(n)s matched findings have this attribute filled in on both sides; "
            "kappa needs at least two",
            n,
        ) % {"n": n}
    if code == KAPPA_NO_VARIATION:
        return gettext(
            "every matched finding had the same value on both sides, so agreement by "
            "chance is complete and kappa is undefined"
        )
    return gettext("not enough matched findings to compare")


def match_rule_text(rule: str | None, threshold) -> str:
    """The match rule with its threshold and unit, as the result page shows it."""
    from annotation_server.projects.models import ReadingProtocol

    rules = ReadingProtocol.MatchRule
    try:
        label = str(rules(rule).label)
    except ValueError:
        label = rule or ""
    if rule in (rules.CENTRE_DISTANCE, rules.DISTANCE_OR_INSIDE):
        return gettext("%(rule)s, threshold %(t)s mm") % {"rule": label, "t": _num(threshold)}
    if rule in (rules.OVERLAP_DICE, rules.OVERLAP_IOU):
        return gettext("%(rule)s, threshold %(t)s (overlap ratio, 0–1)") % {
            "rule": label,
            "t": _num(threshold),
        }
    return label


def _num(value) -> str:
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return "—"


def feedback(attempt: QualificationAttempt, viewer) -> dict:
    """What the result page shows `viewer` of a submitted attempt."""
    details = attempt.details or {}
    reveal = reveals_positions(attempt, viewer)
    shown = details if reveal else redacted_details(details)
    definition = attempt.test.project.label_schema.definition
    types, attributes = schema_labels(definition)
    score = details.get("score") or {}
    reasons = score.get("kappa_reasons") or {}
    pairs = score.get("kappa_pairs") or {}
    kappa_rows = [
        {
            "key": key,
            "label": attributes.get(key, key),
            "value": value,
            "why": None
            if value is not None
            else kappa_reason_text(reasons.get(key), pairs.get(key)),
        }
        for key, value in (score.get("kappa") or {}).items()
    ]

    def kinds(rows):
        return [
            {"key": key, "label": types.get(key, key or gettext("unknown type")), "n": n}
            for key, n in sorted(_by_type(rows).items())
        ]

    def located(rows):
        return [
            dict(row, label=types.get(row.get("finding_type"), row.get("finding_type")))
            for row in rows or ()
        ]

    return {
        "reveal": reveal,
        "details": shown,
        "missed_kinds": kinds(details.get("misses")),
        "false_positive_kinds": kinds(details.get("false_positives")),
        "missed_total": len(details.get("misses") or ()),
        "false_positive_total": len(details.get("false_positives") or ()),
        "misses": located(details.get("misses")) if reveal else [],
        "false_positives": located(details.get("false_positives")) if reveal else [],
        "kappa_rows": kappa_rows,
        "match": match_rule_text(details.get("match_rule"), details.get("match_threshold")),
    }


def must_qualify(user, project_ids_: list[int] | None = None) -> list[dict]:
    """The active tests this user must still pass before real cases come: one row
    per project where they read, are not qualified and a test is active."""
    memberships = Membership.objects.filter(user=user, role=Role.READER, qualified=False)
    if project_ids_ is not None:
        memberships = memberships.filter(project_id__in=project_ids_)
    rows = []
    for m in memberships.select_related("project"):
        test = active_test(m.project)
        if test is None:
            continue
        status = status_for(test, user)
        rows.append({"project": m.project, "test": test, "status": status})
    return rows


def overview(test: QualificationTest) -> list[dict]:
    """Every reader's attempts and status, for the manager."""
    members = (
        Membership.objects.filter(project=test.project, role=Role.READER)
        .select_related("user__profile__site")
        .order_by("user_id")
    )
    attempts: dict[int, list[QualificationAttempt]] = {}
    for a in QualificationAttempt.objects.filter(test=test).order_by("reader_id", "number"):
        attempts.setdefault(a.reader_id, []).append(a)
    rows = []
    for m in members:
        mine = attempts.get(m.user_id, [])
        profile = getattr(m.user, "profile", None)
        if m.qualified:
            status = "qualified"
        elif any(a.submitted_at is None for a in mine):
            status = "in_progress"
        elif len(mine) >= test.max_attempts:
            status = "failed"
        elif mine:
            status = "not_passed"
        else:
            status = "not_started"
        rows.append(
            {
                "user_id": m.user_id,
                "identity": reader_identity(m.user),
                "pseudonym": profile.pseudonym if profile else f"user-{m.user_id}",
                "username": m.user.get_username(),
                "qualified": m.qualified,
                "status": status,
                "attempts": mine,
            }
        )
    return rows
