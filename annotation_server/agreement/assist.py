"""What readers did with one assist model version's proposals, per project.

`assist_summary(project, model_version)` measures, over the project's submitted
operational reads (qualification reads excluded):

- dispositions: how many proposals were accepted as is, edited, rejected; the
  acceptance rate (accepted + edited over decided) and the edit magnitude (mean
  and median Dice and HD95 between proposal and final shape, edited ones only);
- misses: findings a reader drew themselves (source manual) in a read that was
  shown this version's proposals, which no proposal of the case matched under
  the project's match rule (qc.matching.match_pairs, same finding type);
- reading time per read (ReadingTask.active_seconds) with proposals shown and
  without (the no-assistance arm, phases that show none, cases the model did
  not run on), as n, mean and median.

A read counts as "with proposals" when the protocol showed proposals in its
phase (ReadingProtocol.proposals_shown_in), its case is not in the
no-assistance arm, and this version has proposals on the case at or above the
protocol's lowest confidence shown.

`model_froc(project, model_version)` scores the version's proposals against the
reference standard of the adjudicated cases it ran on, with the evaluation
kit's FROC (qc.evaluation.detection, LUNA16 conventions) under the project's
match rule: sensitivity at 1/8 ... 8 false positives per scan and the CPM. The
scans are the adjudicated cases holding a proposal of this version (a case the
model ran on and proposed nothing on is not known to have been run).

`project_assistance(project)` is both for every version with proposals in the
project: the manager's "Model assistance" page and the agreement report's
"assistance" block.
"""

from __future__ import annotations

from statistics import median
from typing import Any

import numpy as np

from annotation_server.adjudication.marks import (
    centre_of,
    grid_for_series,
    mark_for_finding,
    shapes_of,
)
from annotation_server.projects.models import Project, ReadingProtocol
from annotation_server.reading.models import (
    AssistModelVersion,
    Finding,
    Proposal,
    ProposalDisposition,
    ReadingTask,
)
from qc.evaluation import detection
from qc.matching import Mark, match_pairs, similarity

REFERENCE_STATES = ("adjudicated", "frozen")


def _stats(values: list[float]) -> dict[str, Any]:
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"n": 0, "mean": None, "median": None}
    return {
        "n": len(values),
        "mean": round(sum(values) / len(values), 3),
        "median": round(float(median(values)), 3),
    }


def proposal_mark(proposal: Proposal, grid=None) -> Mark:
    geometry = proposal.geometry or {}
    return Mark(
        id=f"proposal-{proposal.pk}",
        reader="model",
        finding_type=proposal.finding_type,
        centre_mm=centre_of(
            geometry, (proposal.centre_x_mm, proposal.centre_y_mm, proposal.centre_z_mm), grid
        ),
        kind=geometry.get("kind", "point"),
        shapes=shapes_of(geometry),
        attributes=dict(proposal.attributes or {}),
    )


def _shown(protocol: ReadingProtocol | None, task: ReadingTask) -> bool:
    return bool(
        protocol
        and protocol.proposals_shown_in(task.phase)
        and not protocol.case_unassisted(task.case_id)
    )


def assist_summary(project: Project, model_version: AssistModelVersion) -> dict[str, Any]:
    protocol = getattr(project, "protocol", None)
    min_conf = protocol.prelabel_min_confidence if protocol else 0.0
    proposals = Proposal.objects.filter(case__project=project, model_version=model_version)
    by_case: dict[int, list[Proposal]] = {}
    for p in proposals.filter(score__gte=min_conf).select_related("series"):
        by_case.setdefault(p.case_id, []).append(p)

    decided = ProposalDisposition.objects.filter(
        proposal__model_version=model_version, proposal__case__project=project
    )
    counts = {a: decided.filter(action=a).count() for a in ProposalDisposition.Action.values}
    total = sum(counts.values())
    edited = decided.filter(action=ProposalDisposition.Action.EDITED)

    tasks = (
        ReadingTask.objects.operational()
        .filter(case__project=project, state=ReadingTask.State.SUBMITTED)
        .select_related("case__series")
        .order_by("pk")
    )
    with_time, without_time = [], []
    misses, manual_checked, assisted_reads = 0, 0, 0
    rule = protocol.match_rule if protocol else ReadingProtocol.MatchRule.CENTRE_DISTANCE
    threshold = protocol.match_threshold if protocol else 5.0
    grids: dict[int, Any] = {}
    for task in tasks:
        shown = _shown(protocol, task) and task.case_id in by_case
        (with_time if shown else without_time).append(task.active_seconds)
        if not shown:
            continue
        assisted_reads += 1
        series = task.case.series
        if series is not None and series.pk not in grids:
            grids[series.pk] = grid_for_series(series)
        grid = grids.get(series.pk) if series is not None else None
        manual = [
            mark_for_finding(f, grid)
            for f in Finding.objects.filter(task=task, source=Finding.Source.MANUAL)
        ]
        if not manual:
            continue
        manual_checked += len(manual)
        candidates = [proposal_mark(p, grid) for p in by_case[task.case_id]]
        matching = match_pairs(manual, candidates, rule, threshold, grid)
        misses += len(matching.missed)

    return {
        "model": model_version.name,
        "version": model_version.version,
        "weights_sha256": model_version.weights_sha256,
        "proposals": proposals.count(),
        "cases_with_proposals": proposals.values("case").distinct().count(),
        "decided": total,
        "accepted": counts[ProposalDisposition.Action.ACCEPTED],
        "edited": counts[ProposalDisposition.Action.EDITED],
        "rejected": counts[ProposalDisposition.Action.REJECTED],
        "acceptance_rate": (
            round(
                (
                    counts[ProposalDisposition.Action.ACCEPTED]
                    + counts[ProposalDisposition.Action.EDITED]
                )
                / total,
                4,
            )
            if total
            else None
        ),
        "edit_dice": _stats(list(edited.values_list("dice", flat=True))),
        "edit_hd95_mm": _stats(list(edited.values_list("hd95_mm", flat=True))),
        "assisted_reads": assisted_reads,
        "manual_findings_in_assisted_reads": manual_checked,
        "misses": misses,
        "match_rule": rule,
        "match_threshold": threshold,
        "reading_seconds_with": _stats(with_time),
        "reading_seconds_without": _stats(without_time),
    }


def model_froc(project: Project, model_version: AssistModelVersion) -> dict[str, Any]:
    """The version's FROC against the reference standard (see the module's doc)."""
    from annotation_server.adjudication.marks import marks_for_reference

    protocol = getattr(project, "protocol", None)
    rule = protocol.match_rule if protocol else ReadingProtocol.MatchRule.CENTRE_DISTANCE
    threshold = protocol.match_threshold if protocol else 5.0
    proposals = (
        Proposal.objects.filter(
            case__project=project,
            model_version=model_version,
            case__state__in=REFERENCE_STATES,
            case__is_qualification=False,
        )
        .select_related("case__series")
        .order_by("case_id", "-score", "id")
    )
    by_case: dict[int, list[Proposal]] = {}
    for p in proposals:
        by_case.setdefault(p.case_id, []).append(p)
    l_scan, l_best, f_scan, f_prob, kinds, mark_probs, mark_scan = [], [], [], [], [], [], []
    for scan, rows in enumerate(by_case.values()):
        case = rows[0].case
        grid = grid_for_series(case.series) if case.series_id else None
        reference = marks_for_reference(case, grid)
        marks = [proposal_mark(p, grid) for p in rows]
        best = [-np.inf] * len(reference)
        for p, mark in zip(rows, marks, strict=True):
            hits = [
                i
                for i, ref in enumerate(reference)
                if ref.finding_type == mark.finding_type
                and similarity(mark, ref, rule, threshold, grid)
            ]
            for i in hits:
                best[i] = max(best[i], float(p.score))
            if not hits:
                f_scan.append(scan)
                f_prob.append(float(p.score))
            kinds.append(1 if hits else 0)
            mark_probs.append(float(p.score))
            mark_scan.append(scan)
        l_scan += [scan] * len(reference)
        l_best += best
    n_scans, n_lesions = len(by_case), len(l_scan)
    out: dict[str, Any] = {
        "scans": n_scans,
        "lesions": n_lesions,
        "proposals": len(mark_probs),
        "match_rule": rule,
        "match_threshold": threshold,
        "cpm": None,
        "sensitivity_at": {},
    }
    if not n_scans or not n_lesions:
        return out
    best_arr = np.asarray(l_best, dtype=float)
    scan_max = np.full(n_scans, -np.inf)
    np.maximum.at(scan_max, np.asarray(mark_scan), np.asarray(mark_probs))
    scored = detection.Scored(
        n_scans=n_scans,
        l_scan=np.asarray(l_scan, dtype=np.int64),
        l_best=best_arr,
        l_by=np.full(n_lesions, -1, dtype=np.int64),
        l_index=np.arange(n_lesions),
        f_scan=np.asarray(f_scan, dtype=np.int64),
        f_prob=np.asarray(f_prob, dtype=float),
        scan_max=scan_max,
        mark_kind=np.asarray(kinds, dtype=np.int64),
        x_best=best_arr,
        x_by=np.full(n_lesions, -1, dtype=np.int64),
    )
    figures = detection.figures_for(
        detection.prepare(scored, float(model_version.card.get("threshold") or 0.5)),
        np.ones((1, n_scans)),
    )
    out["cpm"] = round(float(figures["cpm"][0]), 4)
    out["sensitivity_at"] = {
        f"{r:g}": round(float(figures[f"sens_at_{r:g}"][0]), 4) for r in detection.CPM_RATES
    }
    return out


def project_assistance(project: Project) -> list[dict[str, Any]]:
    """For every model version with proposals in the project: what readers did
    with them (assist_summary) and how they score against the reference."""
    ids = (
        Proposal.objects.filter(case__project=project)
        .values_list("model_version_id", flat=True)
        .distinct()
    )
    rows = AssistModelVersion.objects.filter(pk__in=list(ids)).order_by("name", "-registered_at")
    return [{**assist_summary(project, row), "froc": model_froc(project, row)} for row in rows]
