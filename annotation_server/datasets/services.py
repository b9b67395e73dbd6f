"""Dataset version workflows: draft, split, retire, freeze, discard.

A manager drafts a version: its name (MAJOR.MINOR.PATCH), an optional parent
(the frozen version it corrects or extends), and a selection of adjudicated
cases (all of them, a list of case ids, or a filter by site and manufacturer).
The draft's cases are drawn into splits at once (splits.py: patient-level,
stratified by site, manufacturer and case label, seeded); cases of the parent
keep their parent's split, and a parent case left out is retired with a reason,
never dropped. A draft can be redrawn with another seed, cases retired, or the
draft discarded.

`freeze` snapshots everything (snapshot.py), lists every live row it read in
FrozenRow, computes the changelog against the parent (changelog.py), moves the
adjudicated cases to "frozen" and marks the version frozen, in one transaction.
From then on the database refuses changes to all of it (migration 0004, and
guards.py in the code). Every step is audited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from annotation_server.audit import services as audit
from annotation_server.datasets import changelog as changes
from annotation_server.datasets import splits
from annotation_server.datasets.models import (
    SEMVER_PATTERN,
    DatasetCase,
    DatasetVersion,
    FrozenError,
    FrozenRow,
    frozen_message,
)
from annotation_server.datasets.querysets import SEQUESTERED_SPLIT
from annotation_server.datasets.snapshot import (
    case_label,
    case_snapshot,
    current_reference,
    project_snapshot,
    reference_digest,
    sha256_of,
)
from annotation_server.errors import DomainError
from annotation_server.projects.models import Case, Project
from annotation_server.projects.permissions import MANAGE, has_project_perm
from annotation_server.projects.services import transition

ELIGIBLE_STATES = (Case.State.ADJUDICATED, Case.State.FROZEN)


class VersionError(DomainError):
    """A version request that cannot be done (bad name, no cases, wrong state...)."""

    status = 400
    code = "invalid_version"


class VersionConflict(DomainError):
    code = "version_conflict"


def _require_manager(user, project: Project) -> None:
    from django.core.exceptions import PermissionDenied

    if user is None or not has_project_perm(user, project, MANAGE):
        raise PermissionDenied(gettext("Only the project's dataset managers can do this."))


def eligible_cases(project: Project):
    """The cases a version may hold: adjudicated (or already frozen in another version)."""
    return Case.objects.filter(project=project, is_qualification=False, state__in=ELIGIBLE_STATES)


def _facts(cases) -> dict[int, dict]:
    """Per case: patient, site, manufacturer and the live case label (positive when
    the current reference holds an included finding)."""
    from annotation_server.adjudication.models import ReferenceFinding

    positive = set(
        ReferenceFinding.objects.filter(
            case__in=cases, is_current=True, status=ReferenceFinding.Status.INCLUDED
        ).values_list("case_id", flat=True)
    )
    out = {}
    for c in cases.select_related("site", "series__study"):
        out[c.pk] = {
            "case": c,
            "patient": c.series.study.patient_pseudo_id or f"case-{c.pk}",
            "site": c.site.code if c.site else "",
            "manufacturer": c.series.manufacturer or "",
            "label": "positive" if c.pk in positive else "negative",
        }
    return out


def _validate_name(project: Project, version: str, parent: DatasetVersion | None) -> None:
    if not re.match(SEMVER_PATTERN, version or ""):
        raise VersionError(gettext("Use MAJOR.MINOR.PATCH for the version, e.g. 1.0.0."))
    if DatasetVersion.objects.filter(project=project, version=version).exists():
        raise VersionError(
            gettext("Version %(version)s of this project exists already.") % {"version": version}
        )
    if parent is not None:
        if parent.project_id != project.pk:
            raise VersionError(gettext("The parent version belongs to another project."))
        if not parent.frozen:
            raise VersionError(gettext("The parent version must be frozen."))
        key = tuple(int(p) for p in version.split("."))
        if key <= parent.version_key:
            raise VersionError(
                gettext("Version %(version)s must be greater than its parent %(parent)s.")
                % {"version": version, "parent": parent.version}
            )


def select_cases(
    project: Project,
    *,
    all_adjudicated: bool = False,
    codes: Iterable[str] | None = None,
    sites: Iterable[str] | None = None,
    manufacturers: Iterable[str] | None = None,
):
    """The chosen eligible cases; an unknown or ineligible code is an error (named)."""
    cases = eligible_cases(project)
    if codes is not None:
        wanted = [c.strip() for c in codes if c and c.strip()]
        found = dict(cases.filter(code__in=wanted).values_list("code", "pk"))
        missing = [c for c in wanted if c not in found]
        if missing:
            raise VersionError(
                gettext("These cases do not exist or are not adjudicated: %(codes)s")
                % {"codes": ", ".join(missing[:20])}
            )
        cases = cases.filter(pk__in=found.values())
    elif not all_adjudicated and not sites and not manufacturers:
        raise VersionError(gettext("Choose the cases: all adjudicated, a list, or a filter."))
    if sites:
        cases = cases.filter(site__code__in=list(sites))
    if manufacturers:
        cases = cases.filter(series__manufacturer__in=list(manufacturers))
    return cases


@transaction.atomic
def create_draft(
    project: Project,
    *,
    version: str,
    by,
    parent: DatasetVersion | None = None,
    title: str = "",
    notes: str = "",
    all_adjudicated: bool = False,
    codes: Iterable[str] | None = None,
    sites: Iterable[str] | None = None,
    manufacturers: Iterable[str] | None = None,
    seed: int = 1,
    ratios: dict[str, float] | None = None,
    retire_reason: str = "",
) -> DatasetVersion:
    """A draft version with its cases drawn into splits."""
    _require_manager(by, project)
    _validate_name(project, version, parent)
    try:
        ratios = splits.normalise_ratios(ratios)
    except splits.SplitError as exc:
        raise VersionError(gettext("Split ratios: %(error)s") % {"error": exc}) from None
    codes = list(codes) if codes is not None else None
    cases = select_cases(
        project,
        all_adjudicated=all_adjudicated,
        codes=codes,
        sites=sites,
        manufacturers=manufacturers,
    )
    if not cases.exists():
        raise VersionError(gettext("No adjudicated case matches this selection."))
    parent_rows = {}
    if parent is not None:
        parent_rows = {dc.case_id: dc for dc in parent.cases.filter(retired=False)}
        dropped = set(parent_rows) - set(cases.values_list("pk", flat=True))
        if dropped and not retire_reason.strip():
            raise VersionError(
                gettext(
                    "%(n)s cases of version %(parent)s are not in this selection: give the "
                    "reason they are retired."
                )
                % {"n": len(dropped), "parent": parent.version}
            )
    draft = DatasetVersion.objects.create(
        project=project,
        version=version,
        parent=parent,
        title=title,
        notes=notes,
        created_by=by,
        seed=seed,
        split_ratios=ratios,
        selection={
            "all_adjudicated": bool(all_adjudicated),
            "codes": codes,
            "sites": sorted(sites or []),
            "manufacturers": sorted(manufacturers or []),
            "retire_reason": retire_reason,
        },
    )
    _fill(draft, cases, parent_rows, retire_reason)
    audit.record(
        "dataset.version_drafted",
        actor=by,
        obj=draft,
        project_id=project.pk,
        data={
            "version": version,
            "parent": parent.version if parent else None,
            "cases": draft.cases.filter(retired=False).count(),
            "seed": seed,
            "ratios": ratios,
        },
    )
    return draft


def _fill(draft: DatasetVersion, cases, parent_rows: dict, retire_reason: str) -> None:
    facts = _facts(cases)
    fixed = {}
    for case_id, f in facts.items():
        if case_id in parent_rows:
            fixed[f["patient"]] = parent_rows[case_id].split
    items = [
        splits.Item(
            case_id=str(cid),
            patient_id=f["patient"],
            site=f["site"],
            manufacturer=f["manufacturer"],
            label=f["label"],
        )
        for cid, f in facts.items()
    ]
    try:
        assignment = splits.assign(items, ratios=draft.split_ratios, seed=draft.seed, fixed=fixed)
    except splits.SplitError as exc:
        raise VersionError(str(exc)) from None
    rows = [
        DatasetCase(
            dataset_version=draft,
            case_id=cid,
            case_code=f["case"].code,
            patient_pseudo_id=f["patient"],
            site_code=f["site"],
            manufacturer=f["manufacturer"],
            case_label=f["label"],
            split=assignment[str(cid)],
        )
        for cid, f in facts.items()
    ]
    for case_id, old in parent_rows.items():
        if case_id not in facts:
            rows.append(
                DatasetCase(
                    dataset_version=draft,
                    case_id=case_id,
                    case_code=old.case_code,
                    patient_pseudo_id=old.patient_pseudo_id,
                    site_code=old.site_code,
                    manufacturer=old.manufacturer,
                    case_label=old.case_label,
                    split=old.split,
                    retired=True,
                    retired_reason=retire_reason.strip()[:200],
                )
            )
    DatasetCase.objects.bulk_create(rows)


def _lock_draft(version: DatasetVersion) -> DatasetVersion:
    version = DatasetVersion.objects.select_for_update().get(pk=version.pk)
    if version.frozen:
        raise FrozenError(frozen_message())
    return version


@transaction.atomic
def redraw(version: DatasetVersion, *, by, seed: int, ratios: dict | None = None) -> DatasetVersion:
    """Draw a draft's splits again (another seed or ratios); retired cases stay retired."""
    _require_manager(by, version.project)
    version = _lock_draft(version)
    try:
        ratios = splits.normalise_ratios(ratios or version.split_ratios)
    except splits.SplitError as exc:
        raise VersionError(gettext("Split ratios: %(error)s") % {"error": exc}) from None
    DatasetVersion.objects.filter(pk=version.pk).update(seed=seed, split_ratios=ratios)
    version.refresh_from_db()
    live = version.cases.filter(retired=False)
    retired = {dc.case_id: dc for dc in version.cases.filter(retired=True)}
    parent_rows = (
        {dc.case_id: dc for dc in version.parent.cases.filter(retired=False)}
        if version.parent
        else {}
    )
    ids = set(live.values_list("case_id", flat=True))
    cases = Case.objects.filter(pk__in=ids)
    live.delete()
    keep = {cid: dc for cid, dc in parent_rows.items() if cid in ids}
    _fill(version, cases, keep, "")
    audit.record(
        "dataset.version_redrawn",
        actor=by,
        obj=version,
        project_id=version.project_id,
        data={
            "seed": seed,
            "ratios": ratios,
            "retired": sorted(r.case_code for r in retired.values()),
        },
    )
    return version


@transaction.atomic
def retire_case(version: DatasetVersion, case_code: str, *, by, reason: str) -> DatasetCase:
    """Flag a draft's case as retired (kept on record, out of every split count)."""
    _require_manager(by, version.project)
    version = _lock_draft(version)
    if not reason.strip():
        raise VersionError(gettext("Retiring a case needs a reason."))
    row = version.cases.filter(case_code=case_code).first()
    if row is None:
        raise VersionError(gettext("Case %(code)s is not in this version.") % {"code": case_code})
    DatasetCase.objects.filter(pk=row.pk).update(retired=True, retired_reason=reason.strip()[:200])
    audit.record(
        "dataset.case_retired",
        actor=by,
        obj=version,
        project_id=version.project_id,
        data={"case": case_code, "reason": reason.strip()},
    )
    row.refresh_from_db()
    return row


@transaction.atomic
def discard_draft(version: DatasetVersion, *, by) -> None:
    _require_manager(by, version.project)
    version = _lock_draft(version)
    audit.record(
        "dataset.version_discarded",
        actor=by,
        obj=version,
        project_id=version.project_id,
        data={"version": version.version},
    )
    version.cases.all().delete()
    version.delete()


# ------------------------------------------------------------------ changelog


def _state_from_snapshot(dc: DatasetCase) -> changes.CaseState:
    ref = current_reference(dc.snapshot)
    return changes.CaseState(
        split=dc.split,
        retired=dc.retired,
        retired_reason=dc.retired_reason,
        findings=ref["findings"],
        labels=ref["labels"],
    )


def _live_states(rows: list[DatasetCase]) -> dict[str, changes.CaseState]:
    """For a draft: each case's reference as it stands now."""
    from annotation_server.adjudication.models import ReferenceFinding, ReferenceLabels

    ids = [dc.case_id for dc in rows]
    findings: dict[int, dict] = {cid: {} for cid in ids}
    for r in ReferenceFinding.objects.filter(case_id__in=ids, is_current=True):
        findings[r.case_id][str(r.ref_key)] = {
            "revision": r.revision,
            "status": r.status,
            "finding_type": r.finding_type,
            "attributes": r.attributes,
            "geometry": r.geometry,
            "diameter_mm": r.diameter_mm,
            "arbitration_task": r.arbitration_task_id,
        }
    labels = {
        lab.case_id: {
            "revision": lab.revision,
            "values": lab.values,
            "arbitration_task": lab.arbitration_task_id,
        }
        for lab in ReferenceLabels.objects.filter(case_id__in=ids, is_current=True)
    }
    return {
        dc.case_code: changes.CaseState(
            split=dc.split,
            retired=dc.retired,
            retired_reason=dc.retired_reason,
            findings=findings.get(dc.case_id, {}),
            labels=labels.get(dc.case_id),
        )
        for dc in rows
    }


def compute_changelog(version: DatasetVersion) -> dict:
    """The frozen changelog, or for a draft the changes it would freeze with."""
    if version.frozen:
        return version.changelog
    rows = list(version.cases.all())
    child = {}
    live = _live_states([dc for dc in rows if not dc.retired])
    for dc in rows:
        child[dc.case_code] = live.get(dc.case_code) or changes.CaseState(
            split=dc.split, retired=dc.retired, retired_reason=dc.retired_reason
        )
    parent = {}
    if version.parent is not None:
        parent = {dc.case_code: _state_from_snapshot(dc) for dc in version.parent.cases.all()}
    return changes.compute(version.parent.version if version.parent else "", parent, child)


# --------------------------------------------------------------------- freeze


@transaction.atomic
def freeze(version: DatasetVersion, *, by, confirm: str | None = None) -> DatasetVersion:
    """Freeze a draft: snapshot, frozen rows, changelog, cases to "frozen"."""
    _require_manager(by, version.project)
    version = _lock_draft(version)
    if confirm is not None and confirm.strip() != version.version:
        raise VersionError(
            gettext("Type the version number %(version)s to confirm the freeze.")
            % {"version": version.version}
        )
    rows = list(version.cases.select_related("case").order_by("case_code"))
    live = [dc for dc in rows if not dc.retired]
    if not live:
        raise VersionError(gettext("A version needs at least one case that is not retired."))
    ids = [dc.case_id for dc in live]
    locked = {c.pk: c for c in Case.objects.select_for_update().filter(pk__in=ids)}
    not_ready = sorted(
        c.code
        for c in locked.values()
        if c.state not in ELIGIBLE_STATES
        or c.is_qualification
        or c.project_id != version.project_id
    )
    if not_ready:
        raise VersionConflict(
            gettext("These cases are no longer adjudicated (re-opened for arbitration?): %(codes)s")
            % {"codes": ", ".join(not_ready[:20])}
        )
    changelog = compute_changelog(version)
    parent_snaps = {}
    if version.parent is not None:
        parent_snaps = {dc.case_id: dc.snapshot for dc in version.parent.cases.all()}
    frozen_rows: dict[str, set[int]] = {}
    case_snaps = []
    for dc in rows:
        if dc.retired:
            # kept on record as it was last included; nothing live is read for it
            snap = parent_snaps.get(dc.case_id) or {}
            DatasetCase.objects.filter(pk=dc.pk).update(
                snapshot=snap, reference_sha256=reference_digest(snap) if snap else ""
            )
            continue
        snap, case_rows = case_snapshot(dc.case)
        case_snaps.append(snap)
        for table, ids_ in case_rows.items():
            frozen_rows.setdefault(table, set()).update(ids_)
        series = snap["series"]
        DatasetCase.objects.filter(pk=dc.pk).update(
            snapshot=snap,
            reference_sha256=reference_digest(snap),
            case_label=case_label(snap),
            patient_pseudo_id=series["patient_pseudo_id"] or dc.patient_pseudo_id,
            manufacturer=series["manufacturer"],
            site_code=snap["case"]["site_code"],
        )
    project_snap, project_rows = project_snapshot(version.project, case_snaps)
    for table, ids_ in project_rows.items():
        frozen_rows.setdefault(table, set()).update(ids_)
    FrozenRow.objects.bulk_create(
        [
            FrozenRow(dataset_version=version, table_name=table, row_id=row_id)
            for table, ids_ in sorted(frozen_rows.items())
            for row_id in sorted(ids_)
        ],
        batch_size=2000,
    )
    for case in locked.values():
        if case.state == Case.State.ADJUDICATED:
            transition(
                case,
                Case.State.FROZEN,
                by=by,
                reason=f"dataset version {version.version}",
            )
    now = timezone.now()
    reference = {
        dc.case_code: dc.reference_sha256
        for dc in DatasetCase.objects.filter(dataset_version=version).order_by("case_code")
    }
    content = sha256_of(
        {
            "version": version.version,
            "project": project_snap,
            "cases": [
                [dc.case_code, dc.split, dc.retired, dc.retired_reason, dc.snapshot]
                for dc in DatasetCase.objects.filter(dataset_version=version).order_by("case_code")
            ],
        }
    )
    DatasetVersion.objects.filter(pk=version.pk).update(
        frozen=True,
        frozen_at=now,
        frozen_by=by,
        snapshot=project_snap,
        changelog=changelog,
        reference_snapshot=reference,
        content_sha256=content,
    )
    audit.record(
        "dataset.version_frozen",
        actor=by,
        obj=version,
        project_id=version.project_id,
        data={
            "version": version.version,
            "parent": version.parent.version if version.parent else None,
            "cases": len(live),
            "retired": len(rows) - len(live),
            "frozen_rows": sum(len(v) for v in frozen_rows.values()),
            "content_sha256": content,
        },
    )
    version.refresh_from_db()
    return version


def split_summary(version: DatasetVersion, *, show_sequestered: bool) -> list[dict]:
    """Per split: cases, patients, positives, and the strata it covers. The
    sequestered split's row says only that it exists unless it may be seen."""
    from collections import Counter

    rows = list(
        version.cases.filter(retired=False).values(
            "split", "patient_pseudo_id", "case_label", "site_code", "manufacturer"
        )
    )
    out = []
    for split, label in DatasetVersion.Split.choices:
        mine = [r for r in rows if r["split"] == split]
        hidden = split == "test" and not show_sequestered
        entry = {"split": split, "label": label, "sequestered": split == "test", "hidden": hidden}
        if not hidden:
            entry.update(
                cases=len(mine),
                patients=len({r["patient_pseudo_id"] for r in mine}),
                positive=sum(1 for r in mine if r["case_label"] == "positive"),
                sites=dict(sorted(Counter(r["site_code"] or "—" for r in mine).items())),
                manufacturers=dict(sorted(Counter(r["manufacturer"] or "—" for r in mine).items())),
            )
        out.append(entry)
    return out


def patient_leaks(version: DatasetVersion) -> dict[str, set[str]]:
    items = [
        splits.Item(case_id=str(dc.pk), patient_id=dc.patient_pseudo_id)
        for dc in version.cases.filter(retired=False)
    ]
    assignment = {str(dc.pk): dc.split for dc in version.cases.filter(retired=False)}
    return splits.leaks(items, assignment)


def without_sequestered(dv: DatasetVersion, log: dict) -> dict:
    """The changelog less every line about a sequestered case."""
    hidden = set(dv.cases.filter(split=SEQUESTERED_SPLIT).values_list("case_code", flat=True))
    if not hidden:
        return log
    keep = dict(log)
    keep["cases_added"] = [c for c in log.get("cases_added", []) if c not in hidden]
    keep["cases_retired"] = [r for r in log.get("cases_retired", []) if r[0] not in hidden]
    for key in ("reference_changes", "label_changes", "split_changes"):
        keep[key] = [r for r in log.get(key, []) if r["case"] not in hidden]
    return keep
