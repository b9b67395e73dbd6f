"""Model assistance: registering assist models, running them over cases, and what
readers do with their proposals.

The models themselves are assist_models/ (framework-free); this module is the
only place the app turns them into rows:

- `AssistModelVersion` rows name what may run: the built-in models of
  assist_models.registry.BUILTIN_MODELS (`builtin_version`), TorchScript
  plug-ins (`register_plugin`: the folder's config is validated by
  assist_models.torchscript, its two files are copied into the storage under
  assist-models/<sha256 of its files>/) and retrained built-ins (`register_trained`). Workers
  keep local copies under REFSET_ASSIST_MODEL_CACHE, checked against the sha256,
  so web and worker need no shared disk.
- `run_prelabel` (the `reading.prelabel` job) reads each case's series through
  the imaging app, runs the predictor and stores its proposals with the
  threshold in force; the proposals of earlier runs stay, marked not current.
- `accept`, `accept_edited` and `reject` record a `ProposalDisposition` for a
  reader's task (accepting makes a Finding whose source and model say where it
  came from; an edit also records Dice and HD95 between proposal and final
  shape). Which proposals a reader may act on is ProposalQuerySet.for_task's
  business (blinding, phase, confidence, the no-assistance arm).

Every registration and every run is audited.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils.translation import gettext

from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.imaging.delivery import series_volume
from annotation_server.projects.models import Case, Project
from annotation_server.reading import services as reading
from annotation_server.reading.models import (
    AssistModelVersion,
    CaseProbability,
    Finding,
    Proposal,
    ProposalDisposition,
    ReadingTask,
)

STORAGE_PREFIX = "assist-models"

# Built-in models that can be retrained (train_assist_model): the trainer, the
# predictor class taking `weights=`, and the files the trainer writes.
TRAINABLE: dict[str, dict[str, str]] = {
    "lung-nodule": {
        "train": "assist_models.lung_nodule.train",
        "predictor": "assist_models.lung_nodule.predictor.LungNodulePredictor",
        "weights": "lung_nodule.pt",
        "card": "lung_nodule.card.json",
    },
    "chest-radiograph": {
        "train": "assist_models.chest_radiograph.train",
        "predictor": "assist_models.chest_radiograph.predictor.ChestRadiographPredictor",
        "weights": "chest_radiograph.pt",
        "card": "chest_radiograph.card.json",
    },
}


class AssistError(DomainError):
    code = "assist_model"


class ProposalNotAvailable(DomainError):
    """The proposal is not shown to this read (or was already decided)."""

    status = 404
    code = "proposal_not_available"


# ------------------------------------------------------------------ registration


def _card_dict(card) -> dict[str, Any]:
    return card.to_dict()


@transaction.atomic
def builtin_version(name: str, *, by=None) -> AssistModelVersion:
    """The row of a built-in model's committed weights (created on first use)."""
    from assist_models.registry import BUILTIN_MODELS, ModelRegistry

    if name not in BUILTIN_MODELS:
        raise AssistError(gettext("No built-in assist model named %(name)s.") % {"name": name})
    card = ModelRegistry().card(name)
    row, created = AssistModelVersion.objects.get_or_create(
        name=card.name,
        version=card.version,
        weights_sha256=card.weights_sha256,
        defaults={
            "task": card.task,
            "card": _card_dict(card),
            "source": AssistModelVersion.Source.BUILTIN,
            "registered_by": by if by is not None and by.is_authenticated else None,
        },
    )
    if created:
        audit.record(
            "assist_model.registered",
            actor=by,
            obj=row,
            data={"name": row.name, "version": row.version, "sha256": row.weights_sha256},
        )
    return row


def _bundle_prefix(files: dict[str, Path]) -> str:
    """Where a model's files go in the storage: named by the hash of all of them
    (weights and config or card), so a stored bundle never changes."""
    import hashlib

    digest = hashlib.sha256()
    for filename in sorted(files):
        digest.update(filename.encode() + b"\0" + files[filename].read_bytes() + b"\0")
    return f"{STORAGE_PREFIX}/{digest.hexdigest()}"


def _store(files: dict[str, Path]) -> str:
    prefix = _bundle_prefix(files)
    for filename, path in files.items():
        key = f"{prefix}/{filename}"
        if not default_storage.exists(key):  # content-addressed: present means complete
            with open(path, "rb") as fh:
                default_storage.save(key, ContentFile(fh.read()))
    return prefix


def _record(card, *, source: str, path: str, by, extra: dict | None = None):
    row, created = AssistModelVersion.objects.get_or_create(
        name=card.name,
        version=card.version,
        weights_sha256=card.weights_sha256,
        defaults={
            "task": card.task,
            "card": _card_dict(card),
            "source": source,
            "path": path,
            "registered_by": by if by is not None and by.is_authenticated else None,
        },
    )
    if not created:
        raise AssistError(
            gettext("%(name)s %(version)s with these weights is already registered.")
            % {"name": card.name, "version": card.version}
        )
    audit.record(
        "assist_model.registered",
        actor=by,
        obj=row,
        data={
            "name": row.name,
            "version": row.version,
            "sha256": row.weights_sha256,
            "source": source,
            "path": path,
            **(extra or {}),
        },
    )
    return row


@transaction.atomic
def register_plugin(folder: str | Path, *, by=None) -> AssistModelVersion:
    """Validate a TorchScript plug-in folder and copy it into the storage.
    Raises assist_models.torchscript.ConfigError naming each problem."""
    from assist_models.registry import BUILTIN_MODELS
    from assist_models.torchscript import CONFIG_FILE, MODEL_FILE, read_plugin

    folder = Path(folder)
    _, card = read_plugin(folder)
    if card.name in BUILTIN_MODELS:
        raise AssistError(
            gettext("%(name)s is a built-in model's name; choose another.") % {"name": card.name}
        )
    prefix = _store({MODEL_FILE: folder / MODEL_FILE, CONFIG_FILE: folder / CONFIG_FILE})
    return _record(
        card,
        source=AssistModelVersion.Source.PLUGIN,
        path=prefix,
        by=by,
        extra={"folder": str(folder)},
    )


@transaction.atomic
def register_trained(name: str, out_dir: str | Path, *, by=None, summary: dict | None = None):
    """Register a retrained built-in model (the trainer's weights and card in
    `out_dir`) as a new version: the card's version gets the weights' sha256
    prefix, so it never collides with the committed weights' version."""
    from assist_models.interface import ModelCard, sha256_of

    spec = TRAINABLE[name]
    out = Path(out_dir)
    weights, card_path = out / spec["weights"], out / spec["card"]
    data = json.loads(card_path.read_text(encoding="utf-8"))
    sha = sha256_of(weights)
    data["weights_sha256"] = sha
    data["version"] = f"{data['version']}+{sha[:8]}"
    card = ModelCard.from_dict(data)
    card_path.write_text(json.dumps(card.to_dict(), indent=2) + "\n", encoding="utf-8")
    prefix = _store({spec["weights"]: weights, spec["card"]: card_path})
    return _record(
        card,
        source=AssistModelVersion.Source.BUILTIN,
        path=prefix,
        by=by,
        extra={"trained": summary or {}},
    )


def resolve_version(name: str, version: str | None = None, *, by=None) -> AssistModelVersion:
    """The version to run: the named one, else the promoted one, else (for a
    built-in model) its committed weights, else the newest registered. A retrained
    version runs by default only once promoted."""
    from assist_models.registry import BUILTIN_MODELS

    rows = AssistModelVersion.objects.filter(name=name)
    if version:
        row = rows.filter(version=version).order_by("-registered_at", "-id").first()
        if row is None and name in BUILTIN_MODELS:
            row = builtin_version(name, by=by)
            if row.version != version:
                row = None
        if row is None:
            raise AssistError(
                gettext("No version %(version)s of assist model %(name)s.")
                % {"version": version, "name": name}
            )
        return row
    row = rows.filter(promoted=True).first()
    if row is None and name in BUILTIN_MODELS:
        row = builtin_version(name, by=by)
    row = row or rows.first()
    if row is None:
        raise AssistError(gettext("No assist model named %(name)s.") % {"name": name})
    return row


# ------------------------------------------------------------------ loading


def _local_copy(row: AssistModelVersion, filenames: list[str]) -> Path:
    """The row's stored files in the worker's cache, fetched when missing."""
    from assist_models.interface import sha256_of

    target = Path(settings.REFSET_ASSIST_MODEL_CACHE) / Path(row.path).name
    if all((target / f).is_file() for f in filenames):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".fetch-"))
    try:
        for f in filenames:
            with (
                default_storage.open(f"{row.path}/{f}", "rb") as src,
                open(staging / f, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst)
        weights = staging / filenames[0]
        if sha256_of(weights) != row.weights_sha256:
            raise AssistError(
                gettext("The stored weights of %(model)s do not match their sha256.")
                % {"model": str(row)}
            )
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def load_predictor(row: AssistModelVersion, device: str | None = None):
    """The predictor of one registered version."""
    from django.utils.module_loading import import_string

    from assist_models.interface import ModelCard
    from assist_models.registry import ModelRegistry
    from assist_models.torchscript import CONFIG_FILE, MODEL_FILE, TorchScriptPredictor

    if row.source == AssistModelVersion.Source.PLUGIN:
        return TorchScriptPredictor(_local_copy(row, [MODEL_FILE, CONFIG_FILE]), device=device)
    if not row.path:
        return ModelRegistry().load(row.name, device=device)
    spec = TRAINABLE[row.name]
    folder = _local_copy(row, [spec["weights"], spec["card"]])
    card = ModelCard.from_dict(row.card)
    return import_string(spec["predictor"])(
        weights=folder / spec["weights"], card=card, device=device
    )


# ------------------------------------------------------------------ running


def volume_for(case: Case):
    from assist_models.interface import SeriesVolume

    data = series_volume(case.series)
    data.pop("spacing_known")
    return SeriesVolume(**data)


def _centre(geometry: dict) -> tuple[float | None, float | None, float | None]:
    centre = geometry.get("centre_mm")
    return tuple(float(v) for v in centre) if centre else (None, None, None)


@dataclass
class RunReport:
    cases: int = 0
    proposals: int = 0
    skipped: int = 0
    failed: int = 0
    read_s: float = 0.0  # reading the series' pixels through the storage
    model_s: float = 0.0  # the predictor

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def cases_to_run(project: Project, case_ids: list[int] | None = None):
    qs = Case.objects.filter(project=project, series__isnull=False, is_qualification=False)
    if case_ids:
        qs = qs.filter(pk__in=case_ids)
    return qs.select_related("series").order_by("pk")


def store_prediction(case: Case, row: AssistModelVersion, prediction, *, job_id=None) -> int:
    """Store one case's proposals and case-level probabilities (replacing this
    job's own earlier attempt); the case's older ones stay, no longer current."""
    with transaction.atomic():
        Proposal.objects.filter(case=case, job_id=job_id, model_version=row).delete()
        Proposal.objects.filter(case=case, current=True).update(current=False)
        CaseProbability.objects.filter(case=case, job_id=job_id, model_version=row).delete()
        if prediction.case_probabilities:
            CaseProbability.objects.filter(case=case, model_version=row, current=True).update(
                current=False
            )
            CaseProbability.objects.create(
                case=case,
                series=case.series,
                model_version=row,
                probabilities={
                    k: round(float(v), 4) for k, v in prediction.case_probabilities.items()
                },
                threshold=prediction.threshold,
                job_id=job_id,
            )
        Proposal.objects.bulk_create(
            [
                Proposal(
                    case=case,
                    series=case.series,
                    model_version=row,
                    finding_type=p.finding_type,
                    geometry=p.geometry,
                    centre_x_mm=_centre(p.geometry)[0],
                    centre_y_mm=_centre(p.geometry)[1],
                    centre_z_mm=_centre(p.geometry)[2],
                    attributes=dict(p.attributes),
                    score=float(p.confidence),
                    threshold=prediction.threshold,
                    job_id=job_id,
                )
                for p in prediction.proposals
            ]
        )
    return len(prediction.proposals)


def run_prelabel(
    project: Project,
    row: AssistModelVersion,
    *,
    case_ids: list[int] | None = None,
    threshold: float | None = None,
    job_id: int | None = None,
    progress=None,
    log=None,
    predictor=None,
) -> RunReport:
    """Run the model over the project's cases (or `case_ids`) and store proposals.
    A case this model version already proposed on in another run is skipped."""
    predictor = predictor or load_predictor(row)
    report = RunReport()
    cases = list(cases_to_run(project, case_ids))
    for i, case in enumerate(cases):
        done_elsewhere = (
            Proposal.objects.filter(case=case, model_version=row).exclude(job_id=job_id).exists()
            if job_id is not None
            else False
        )
        if done_elsewhere:
            report.skipped += 1
        else:
            try:
                started = time.perf_counter()
                volume = volume_for(case)
                read = time.perf_counter()
                prediction = predictor.predict(volume, threshold=threshold)
                done = time.perf_counter()
            except Exception as exc:  # noqa: BLE001 - one bad series does not stop the run
                report.failed += 1
                if log:
                    log(f"{case.code}: {type(exc).__name__}: {exc}")
            else:
                n = store_prediction(case, row, prediction, job_id=job_id)
                report.cases += 1
                report.proposals += n
                report.read_s += read - started
                report.model_s += done - read
                if log:
                    log(
                        f"{case.code}: {n} proposals ({volume.shape[0]} slices read in "
                        f"{read - started:.2f} s, model {done - read:.2f} s)"
                    )
        if progress:
            progress(100.0 * (i + 1) / max(1, len(cases)))
    return report


# ------------------------------------------------------------------ dispositions


def _lock(task: ReadingTask) -> ReadingTask:
    """The read's row lock, so two decisions on one proposal cannot both pass the
    check below (the second one waits, then finds the first)."""
    return ReadingTask.objects.select_for_update().select_related("case__project").get(pk=task.pk)


def _available(task: ReadingTask, proposal_id: int) -> Proposal:
    proposal = (
        Proposal.objects.for_task(task)
        .select_related("model_version")
        .filter(pk=proposal_id)
        .first()
    )
    if proposal is None:
        raise ProposalNotAvailable(gettext("No such proposal for this read."))
    if ProposalDisposition.objects.filter(task=task, proposal=proposal).exists():
        raise AssistError(gettext("This proposal was already decided in this read."))
    return proposal


def _spacing(series) -> tuple[float, float, float]:
    px = series.pixel_spacing_mm or []
    try:
        row, col = float(px[0]), float(px[1])
    except (TypeError, ValueError, IndexError):
        row = col = 1.0
    if not (row > 0 and col > 0):
        row = col = 1.0
    step = float(series.slice_spacing_mm or series.slice_thickness_mm or 1.0)
    return (step, row, col)


def edit_magnitude(before: dict, after: dict, spacing) -> tuple[float | None, float | None]:
    """(Dice, HD95 in mm) between two geometries' voxel masks; None where a
    geometry has no area (points, lines)."""
    from qc.agreement import shapes
    from qc.raster import rasterise

    def mask(g):
        return rasterise(
            g.get("kind", ""),
            [(s["slice_index"], s.get("points") or []) for s in g.get("shapes", [])],
        )

    a, b = mask(before), mask(after)
    if a is None or b is None:
        return None, None
    lo = tuple(min(x, y) for x, y in zip(a.origin, b.origin, strict=True))
    hi = tuple(max(x, y) for x, y in zip(a.stop, b.stop, strict=True))
    shape = tuple(h - lo_ for lo_, h in zip(lo, hi, strict=True))
    da, db = a.placed(lo, shape), b.placed(lo, shape)
    dice = float(shapes.dice(da, db))
    hd = float(shapes.hd95(da, db, spacing))
    return round(dice, 4), (round(hd, 3) if math.isfinite(hd) else None)


@transaction.atomic
def accept(task: ReadingTask, proposal_id: int, user) -> ProposalDisposition:
    """The proposal becomes the reader's finding as it is."""
    task = _lock(task)
    proposal = _available(task, proposal_id)
    finding = reading.save_finding(
        task,
        user,
        finding_type=proposal.finding_type,
        geometry=proposal.geometry,
        attributes=dict(proposal.attributes),
        source=Finding.Source.MODEL_ACCEPTED,
    )
    _mark_origin(finding, proposal)
    return ProposalDisposition.objects.create(
        task=task,
        proposal=proposal,
        action=ProposalDisposition.Action.ACCEPTED,
        finding=finding,
        dice=1.0,
        hd95_mm=0.0,
    )


@transaction.atomic
def accept_edited(
    task: ReadingTask,
    proposal_id: int,
    user,
    *,
    geometry: dict,
    finding_type: str | None = None,
    attributes: dict | None = None,
) -> ProposalDisposition:
    """The reader's edited version of the proposal becomes their finding."""
    task = _lock(task)
    proposal = _available(task, proposal_id)
    finding = reading.save_finding(
        task,
        user,
        finding_type=finding_type or proposal.finding_type,
        geometry=geometry,
        attributes=dict(proposal.attributes) if attributes is None else attributes,
        source=Finding.Source.MODEL_EDITED,
    )
    _mark_origin(finding, proposal)
    dice, hd95 = edit_magnitude(proposal.geometry, geometry, _spacing(proposal.series))
    return ProposalDisposition.objects.create(
        task=task,
        proposal=proposal,
        action=ProposalDisposition.Action.EDITED,
        finding=finding,
        dice=dice,
        hd95_mm=hd95,
    )


@transaction.atomic
def reject(task: ReadingTask, proposal_id: int, user) -> ProposalDisposition:
    task = _lock(task)
    reading._check_writable(task, user)
    proposal = _available(task, proposal_id)
    return ProposalDisposition.objects.create(
        task=task, proposal=proposal, action=ProposalDisposition.Action.REJECTED
    )


def _same_geometry(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def finding_saved(finding: Finding) -> None:
    """A finding accepted from a proposal was saved again: if its shape now differs
    from the proposal's, the read's disposition becomes "edited" (Dice and HD95
    against the proposal) and the finding's source model_edited; put back as
    proposed, it is "accepted" again. The reader's own claim of a source does not
    count for such findings. Called by reading.services.save_finding."""
    if finding.proposal_id is None:
        return
    proposal = Proposal.objects.select_related("series").get(pk=finding.proposal_id)
    if _same_geometry(proposal.geometry, finding.geometry):
        action, source, dice, hd95 = (
            ProposalDisposition.Action.ACCEPTED,
            Finding.Source.MODEL_ACCEPTED,
            1.0,
            0.0,
        )
    else:
        action, source = ProposalDisposition.Action.EDITED, Finding.Source.MODEL_EDITED
        dice, hd95 = edit_magnitude(proposal.geometry, finding.geometry, _spacing(proposal.series))
    ProposalDisposition.objects.filter(task_id=finding.task_id, proposal_id=proposal.pk).update(
        action=action, dice=dice, hd95_mm=hd95
    )
    if finding.source != source:
        Finding.objects.filter(pk=finding.pk).update(source=source)
        finding.source = source


def finding_deleted(finding: Finding) -> None:
    """Accepting a proposal and then deleting the finding rejects the proposal."""
    if finding.proposal_id is None:
        return
    ProposalDisposition.objects.filter(
        task_id=finding.task_id, proposal_id=finding.proposal_id
    ).update(action=ProposalDisposition.Action.REJECTED, finding=None, dice=None, hd95_mm=None)


def _mark_origin(finding: Finding, proposal: Proposal) -> None:
    Finding.objects.filter(pk=finding.pk).update(
        proposal=proposal,
        model_name=proposal.model_version.name,
        model_version=proposal.model_version.version,
    )
    finding.proposal = proposal
    finding.model_name = proposal.model_version.name
    finding.model_version = proposal.model_version.version


def mean(values) -> float | None:
    values = [float(v) for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def queue_prelabel(
    project: Project,
    row: AssistModelVersion,
    *,
    by=None,
    case_ids: list[int] | None = None,
    threshold: float | None = None,
):
    """Queue a `reading.prelabel` job (it runs on the inference queue)."""
    from annotation_server.jobs import services as jobs

    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise AssistError(gettext("A threshold lies between 0 and 1."))
    params: dict[str, Any] = {"project_id": project.pk, "model_version_id": row.pk}
    if case_ids:
        params["case_ids"] = sorted(int(c) for c in case_ids)
    if threshold is not None:
        params["threshold"] = float(threshold)
    job = jobs.enqueue("reading.prelabel", params=params, project=project, user=by)
    audit.record(
        "assist_model.run_queued",
        actor=by,
        obj=row,
        project_id=project.pk,
        data={"job": job.pk, **{k: v for k, v in params.items() if k != "project_id"}},
    )
    return job
