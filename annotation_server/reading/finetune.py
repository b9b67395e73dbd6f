"""The learning loop: fine-tune an assist model on a project's adjudicated cases,
compare the result with its parent on held-out ones, and let a manager promote it.

- `queue_finetune` (a manager, the console or `finetune_assist_model`) queues
  the "reading.finetune" job on the inference queue. It fixes what the job
  does, so a re-run does the same: the parent (the version that runs by default
  now, assist.resolve_version), the new version's name (`derived_version`:
  "1.0.0" -> "1.0.0-ft1", "1.0.0-ft1+ab12cd34" -> "1.0.0-ft2"; registering adds
  the weights' sha256 prefix), epochs and the split's seed and fraction.
- `run_finetune` (the job) takes the reference standard of the project's
  adjudicated cases from the adjudication app (registry.HOOKS
  "reading.reference_standard": this app may not import it), splits the cases
  into training and held-out ones (`split_cases`: a hash of seed and case id,
  so a case stays on its side when cases are added), fine-tunes the model from
  the parent's weights on the training cases (FINETUNABLE: the model's
  framework-free trainer), scores parent and new weights on the held-out cases
  with the evaluation kit (qc.evaluation: FROC, CPM and the paired bootstrap of
  the CPM difference), writes the figures into the new card and registers it
  (assist.register_trained). Nothing is promoted. The job's result holds the
  whole comparison and the split (case codes), and so does the registration's
  audit event, where a re-run of a job killed after registering finds it.
- `project_versions` lists the versions a project's managers see: those its
  fine-tunes made and their parents, the committed built-ins, the promoted
  ones, and those that proposed on its cases; `promote` makes one of them the
  version that runs by default for its model name (exactly one per name),
  audited.

Promotion is per model name, not per project: the `promoted` flag of
AssistModelVersion is what `prelabel` runs when no version is named.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from annotation_server.audit import services as audit
from annotation_server.errors import DomainError
from annotation_server.jobs import hooks
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case, Project
from annotation_server.reading import assist
from annotation_server.reading.models import AssistModelVersion

KIND = "reading.finetune"
DEFAULT_EPOCHS = 3
MAX_EPOCHS = 50
HOLDOUT_FRACTION = 0.3
SPLIT_SEED = 0
BOOTSTRAP = 500

# Models that can be fine-tuned on reference findings: the trainer, the held-out
# comparison, the card figures from it, and the example and finding types the
# trainer takes (all framework-free, in assist_models/).
FINETUNABLE: dict[str, dict[str, str]] = {
    "lung-nodule": {
        "fine_tune": "assist_models.lung_nodule.training.fine_tune",
        "compare": "assist_models.lung_nodule.evaluate.compare_versions",
        "performance": "assist_models.lung_nodule.evaluate.performance_of_comparison",
        "example": "assist_models.lung_nodule.training.Example",
        "nodule": "assist_models.lung_nodule.training.Nodule",
    },
}


class VersionNotAvailable(DomainError):
    """Not a model version this project's managers see."""

    status = 404
    code = "model_version_not_available"


# ------------------------------------------------------------------ pure helpers

_SCALE = float(1 << 64)


def holdout_draw(case_id: int, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, case id)."""
    digest = hashlib.sha256(f"refset-finetune-holdout:{int(seed)}:{int(case_id)}".encode())
    return int.from_bytes(digest.digest()[:8], "big") / _SCALE


def split_cases(case_ids, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(training, held-out) case ids, each sorted. A case is held out when its
    draw falls below `fraction`: the same case is on the same side on every run
    and stays there when cases are added. With two cases or more each side gets
    at least one (the lowest draw is held out, the highest trained on)."""
    ids = sorted({int(c) for c in case_ids})
    held = [c for c in ids if holdout_draw(c, seed) < fraction]
    if len(ids) >= 2:
        if not held:
            held = [min(ids, key=lambda c: holdout_draw(c, seed))]
        if len(held) == len(ids):
            held.remove(max(ids, key=lambda c: holdout_draw(c, seed)))
    train = [c for c in ids if c not in held]
    return train, sorted(held)


def derived_version(parent_version: str, taken=()) -> str:
    """The new version's name from its parent's: the parent's without its build
    suffix ("+sha"), with "-ftN" counting fine-tunes of the same base; the first
    N not already in `taken` (versions of the model, build suffix ignored)."""
    base = parent_version.split("+", 1)[0]
    match = re.fullmatch(r"(.+)-ft(\d+)", base)
    stem, n = (match.group(1), int(match.group(2))) if match else (base, 0)
    used = {v.split("+", 1)[0] for v in taken}
    n += 1
    while f"{stem}-ft{n}" in used:
        n += 1
    return f"{stem}-ft{n}"


# ------------------------------------------------------------------ queueing


def check_finetunable(name: str) -> None:
    if name not in FINETUNABLE:
        raise assist.AssistError(
            gettext("%(name)s cannot be fine-tuned here; these can: %(names)s.")
            % {"name": name, "names": ", ".join(sorted(FINETUNABLE))}
        )


def queue_finetune(
    project: Project,
    name: str,
    *,
    by=None,
    epochs: int | None = None,
    seed: int = SPLIT_SEED,
    fraction: float = HOLDOUT_FRACTION,
) -> Job:
    """Queue a "reading.finetune" job (inference queue) from the version that runs
    by default now. Refused when the project has fewer than two adjudicated cases."""
    from annotation_server.jobs import services as jobs

    check_finetunable(name)
    epochs = DEFAULT_EPOCHS if epochs is None else int(epochs)
    if not 1 <= epochs <= MAX_EPOCHS:
        raise assist.AssistError(gettext("Epochs lie between 1 and %(max)s.") % {"max": MAX_EPOCHS})
    if not 0.0 < float(fraction) < 1.0:
        raise assist.AssistError(gettext("The held-out fraction lies between 0 and 1."))
    cases = reference_cases(project)
    if len(cases) < 2:
        raise assist.AssistError(
            gettext(
                "Fine-tuning needs at least two adjudicated cases (some to learn from, "
                "some held out to compare on); this project has %(n)s."
            )
            % {"n": len(cases)}
        )
    parent = assist.resolve_version(name, by=by)
    taken = AssistModelVersion.objects.filter(name=name).values_list("version", flat=True)
    params = {
        "project_id": project.pk,
        "model": name,
        "parent_id": parent.pk,
        "version": derived_version(parent.version, taken),
        "epochs": epochs,
        "seed": int(seed),
        "fraction": float(fraction),
    }
    job = jobs.enqueue(KIND, params=params, project=project, user=by)
    audit.record(
        "assist_model.finetune_queued",
        actor=by,
        obj=parent,
        project_id=project.pk,
        data={"job": job.pk, **{k: v for k, v in params.items() if k != "project_id"}},
    )
    return job


# ------------------------------------------------------------------ the job


def reference_cases(project: Project) -> dict[int, list[dict[str, Any]]]:
    """{case id: reference findings} of the project's adjudicated cases (from the
    adjudication app, through the hook)."""
    answers = hooks.collect("reading.reference_standard", project)
    out: dict[int, list[dict[str, Any]]] = {}
    for answer in answers:
        for case_id, findings in answer.items():
            out.setdefault(int(case_id), []).extend(findings)
    return out


def _examples(spec: dict[str, str], cases: list[Case], refs, classes) -> list:
    example, nodule = import_string(spec["example"]), import_string(spec["nodule"])
    return [
        example(
            case_id=case.code,
            series=assist.volume_for(case),
            nodules=tuple(
                nodule(
                    centre_mm=tuple(f["centre_mm"]),
                    diameter_mm=f["diameter_mm"],
                    scored=bool(f["scored"]) and f["finding_type"] in classes,
                )
                for f in refs[case.pk]
            ),
        )
        for case in cases
    ]


def _registered_by(job_id: int | None) -> tuple[AssistModelVersion | None, dict]:
    """The version a run of this job registered already (a re-run after a crash)."""
    from annotation_server.audit.models import AuditEvent

    if job_id is None:
        return None, {}
    event = (
        AuditEvent.objects.filter(action="assist_model.registered", data__trained__job=job_id)
        .order_by("pk")
        .first()
    )
    if event is None:
        return None, {}
    row = AssistModelVersion.objects.filter(pk=int(event.object_id)).first()
    return row, dict(event.data.get("trained") or {})


def _card_texts(parent_card: dict, params: dict, n_train: int, n_held: int, nodules: int):
    training_data = (
        f"Fine-tuned from {parent_card['name']} {parent_card['version']} (weights sha256 "
        f"{parent_card['weights_sha256']}) on {n_train} adjudicated cases of a RefSet project "
        f"({nodules} reference nodules), {params['epochs']} epochs; {n_held} further cases held "
        f"out (seeded split: seed {params['seed']}, fraction {params['fraction']}) to compare "
        "it with its parent. The parent's own training data is described on its card."
    )
    limitations = (
        parent_card.get("limitations", "")
        + f" Fine-tuned on {n_train} cases of one project; its held-out figures rest on "
        f"{n_held} cases and have wide intervals."
    ).strip()
    command = (
        f"python manage.py finetune_assist_model --project <project> --model "
        f"{params['model']} --epochs {params['epochs']} (held-out comparison: "
        "assist_models.lung_nodule.evaluate.compare_versions, qc.evaluation)"
    )
    return training_data, limitations, command


def run_finetune(
    project: Project, params: dict, *, job_id=None, by=None, progress=None, log=None
) -> dict[str, Any]:
    """The job: see the module docstring. Returns the job's result."""
    from assist_models.interface import ModelCard

    log = log or (lambda message: None)
    progress = progress or (lambda percent: None)
    name = params["model"]
    check_finetunable(name)
    spec = FINETUNABLE[name]
    row, done = _registered_by(job_id)
    if row is not None:  # a previous attempt registered it; report what it measured
        log(f"{row.name} {row.version} was registered by an earlier attempt of this job")
        progress(100)
        return _result(row, done)

    parent = AssistModelVersion.objects.get(pk=params["parent_id"])
    parent_predictor = assist.load_predictor(parent)
    classes = set(parent_predictor.card.classes)
    refs = reference_cases(project)
    cases = {
        c.pk: c
        for c in Case.objects.filter(
            pk__in=list(refs), series__modality__iexact=parent_predictor.card.modality
        ).select_related("series")
    }
    train_ids, held_ids = split_cases(list(cases), params["fraction"], params["seed"])
    if not train_ids or not held_ids:
        raise assist.AssistError(
            gettext("Fine-tuning needs at least two adjudicated cases of this modality.")
        )
    split = {
        "seed": params["seed"],
        "fraction": params["fraction"],
        "training_cases": [cases[c].code for c in train_ids],
        "held_out_cases": [cases[c].code for c in held_ids],
    }
    log(
        f"{len(cases)} adjudicated cases: {len(train_ids)} to learn from, {len(held_ids)} held "
        f"out (seed {params['seed']}); parent {parent.version}"
    )
    train = _examples(spec, [cases[c] for c in train_ids], refs, classes)
    held = _examples(spec, [cases[c] for c in held_ids], refs, classes)
    progress(10)

    parent_card = parent_predictor.card.to_dict()
    nodules = sum(1 for ex in train for n in ex.nodules if n.scored)
    training_data, limitations, command = _card_texts(
        parent_card, params, len(train), len(held), nodules
    )
    with tempfile.TemporaryDirectory(prefix="refset-finetune-") as tmp:
        out = Path(tmp)
        trained = import_string(spec["fine_tune"])(
            out,
            train,
            base_weights=parent_predictor.weights,
            base_card=parent_predictor.card,
            version=params["version"],
            epochs=params["epochs"],
            seed=params["seed"],
            training_data=training_data,
            command=command,
        )
        log(
            f"fine-tuned {params['version']}: {trained['positives']} positive and "
            f"{trained['negatives']} negative patches, {trained['steps']} steps, "
            f"loss {trained['final_loss']} ({trained['total_s']} s)"
        )
        card_path = Path(trained["card"])
        card = json.loads(card_path.read_text(encoding="utf-8"))
        new_predictor = import_string(assist.TRAINABLE[name]["predictor"])(
            weights=Path(trained["weights"]), card=ModelCard.from_dict(card)
        )
        comparison = import_string(spec["compare"])(
            held, parent_predictor, new_predictor, bootstrap=BOOTSTRAP, seed=params["seed"]
        )
        progress(80)
        card["performance"] = import_string(spec["performance"])(comparison, len(train))
        card["limitations"] = limitations
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        summary = {
            "job": job_id,
            "project_id": project.pk,
            "parent": {"id": parent.pk, "version": parent.version},
            "split": split,
            "training": {
                k: trained[k]
                for k in ("cases", "positives", "negatives", "epochs", "steps", "lr", "seed")
                if k in trained
            }
            | {"final_loss": trained["final_loss"], "seconds": trained["total_s"]},
            "comparison": comparison,
        }
        existing = AssistModelVersion.objects.filter(
            name=name, weights_sha256=trained["sha256"]
        ).first()
        if existing is not None:
            log(f"these weights are already registered as {existing.version}; nothing new")
            progress(100)
            return _result(existing, summary) | {"already_registered": True}
        row = assist.register_trained(name, out, by=by, summary=summary)
    log(
        f"registered {row.name} {row.version}: CPM {comparison['new']['cpm']} on the held-out "
        f"cases, parent {comparison['parent']['cpm']}"
    )
    progress(100)
    return _result(row, summary)


def _result(row: AssistModelVersion, summary: dict) -> dict[str, Any]:
    return {
        "model": row.name,
        "version": {"id": row.pk, "version": row.version, "weights_sha256": row.weights_sha256},
        **{k: summary.get(k) for k in ("parent", "split", "training", "comparison")},
    }


# ------------------------------------------------------------------ console


def _finetune_results(project: Project) -> dict[int, dict]:
    """{version id: the result of the fine-tune job of this project that made it}."""
    out: dict[int, dict] = {}
    jobs = Job.objects.filter(project=project, kind=KIND, state=Job.State.SUCCEEDED).order_by("pk")
    for job in jobs:
        result = job.result or {}
        version = (result.get("version") or {}).get("id")
        if version:
            out[int(version)] = result | {"job": job.pk}
    return out


def project_versions_queryset(project: Project, made: dict[int, dict] | None = None):
    made = _finetune_results(project) if made is None else made
    related = set(made) | {
        int(r["parent"]["id"]) for r in made.values() if (r.get("parent") or {}).get("id")
    }
    return (
        AssistModelVersion.objects.filter(
            Q(pk__in=related)
            | Q(promoted=True)
            | Q(source=AssistModelVersion.Source.BUILTIN, path="")
            | Q(proposals__case__project=project)
        )
        .distinct()
        .order_by("name", "-registered_at", "-id")
    )


def project_versions(project: Project) -> list[dict[str, Any]]:
    """The versions a project's managers see, with their cards and, for those a
    fine-tune of this project made, its split and held-out comparison."""
    made = _finetune_results(project)
    rows = list(project_versions_queryset(project, made))
    # what prelabel runs without a version (assist.resolve_version): the promoted
    # one, else the committed built-in
    defaults = {row.name: row.pk for row in rows if row.promoted}
    for row in rows:
        if row.source == AssistModelVersion.Source.BUILTIN and not row.path:
            defaults.setdefault(row.name, row.pk)
    out = []
    for row in rows:
        result = made.get(row.pk) or {}
        out.append(
            {
                "id": row.pk,
                "name": row.name,
                "version": row.version,
                "task": row.task,
                "source": row.source,
                "promoted": row.promoted,
                "runs_by_default": defaults.get(row.name) == row.pk,
                "finetunable": row.name in FINETUNABLE,
                "registered_at": row.registered_at,
                "weights_sha256": row.weights_sha256,
                "card": row.card,
                "job": result.get("job"),
                "parent": result.get("parent"),
                "split": result.get("split"),
                "training": result.get("training"),
                "comparison": result.get("comparison"),
            }
        )
    return out


@transaction.atomic
def promote(project: Project, version_id: int, *, by, reason: str = "") -> AssistModelVersion:
    """Make the version the one that runs by default for its model name (the
    others of that name lose the flag), audited. Only versions the project's
    managers see (project_versions) may be promoted from it."""
    row = project_versions_queryset(project).filter(pk=version_id).first()
    if row is None:
        raise VersionNotAvailable(gettext("No such model version for this project."))
    # every version of the name locked, so two promotions cannot both win
    versions = list(AssistModelVersion.objects.select_for_update().filter(name=row.name))
    previous = [v.version for v in versions if v.promoted and v.pk != row.pk]
    AssistModelVersion.objects.filter(name=row.name, promoted=True).exclude(pk=row.pk).update(
        promoted=False
    )
    AssistModelVersion.objects.filter(pk=row.pk).update(promoted=True)
    row.promoted = True
    audit.record(
        "assist_model.promoted",
        actor=by,
        obj=row,
        project_id=project.pk,
        data={
            "name": row.name,
            "version": row.version,
            "sha256": row.weights_sha256,
            "previous": previous,
            "reason": reason,
        },
    )
    return row


def recent_jobs(project: Project, limit: int = 5):
    return Job.objects.filter(project=project, kind=KIND).order_by("-created_at", "-id")[:limit]
