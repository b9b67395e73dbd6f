"""Scoring an AI product against a frozen version: the `datasets.evaluate` job.

The flow, as the export's (export_jobs.py):

1. `request_evaluation` (the upload page, the API) checks the split against the
   user's rights, builds the version's Truth for that split and parses the
   submission at once (qc.evaluation.submission), so a malformed file is
   answered with every problem and its line number while the manager waits, and
   nothing is stored. A well-formed one is stored content-addressed (SHA-256,
   through Django's storage, so the worker need not share the web node's disk),
   an `Evaluation` row is created (queued) and audited, and the job is queued
   with the row's id only.
2. The job (`run`, from datasets/jobs.py) parses again, scores with
   `qc.evaluation.kit.evaluate` (every rule, every stratum, 1000 seeded
   bootstrap resamples), renders the bilingual HTML report
   (evaluation_report.py) and stores it content-addressed, then finishes the row
   with one conditional UPDATE from an unfinished state and audits the outcome.
   Idempotent: a run cut off anywhere starts again from the stored submission;
   a finished row is never touched again (Evaluation.save refuses too).

The sequestered test split, and the whole version ("" split, which contains
it), may be evaluated only by managers who hold `datasets.view_sequestered`;
everyone else gets 404 for them, as for the split's cases.

The Truth never leaves the server: what a product's side sees is its own
submission's problems, and managers (who own the reference) the report.

A fundus version (the fundus-dr schema) is also scored as diabetic-retinopathy
grading (kind "dr_grading", qc.evaluation.dr): the truth is then a DRTruth
built from the same package input (the reference dr_grade and dmo of each
image, and its laterality as recorded at import and frozen in the snapshot;
only a version frozen before laterality was recorded has it read from each
image's de-identified DICOM object, when the job scores, not while the upload
waits). The kind is stored in
Evaluation.kind although the model's choices do not list it yet (a plain
CharField, no database constraint): adding it there needs a datasets migration.

The result's `dataset.manifest_sha256` is the MANIFEST.sha256 hash of the
version's latest successful NIFDC export whose package holds the evaluated
split (a package with the sequestered split for "" and "test"); when the
version has not been exported that way it is "" and the result says so.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from annotation_server.audit import services as audit
from annotation_server.datasets.export_jobs import JOB_KIND as EXPORT_JOB_KIND
from annotation_server.datasets.models import DatasetVersion, Evaluation
from annotation_server.datasets.querysets import SEQUESTERED_SPLIT, may_see_sequestered
from annotation_server.errors import DomainError
from annotation_server.imaging.storage import save_whole
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job

JOB_KIND = "datasets.evaluate"
SPLITS = ("", "train", "validation", SEQUESTERED_SPLIT)
# Diabetic-retinopathy grading on a fundus version (qc.evaluation.dr).
DR_KIND = Evaluation.Kind.DR_GRADING.value
KINDS = tuple(Evaluation.Kind.values)


def kind_choices() -> list[tuple[str, str]]:
    """(value, label) of every submission kind, for the upload form."""
    return list(Evaluation.Kind.choices)


def kind_label(kind: str) -> str:
    return dict(kind_choices()).get(kind, kind)


BOOTSTRAP = 1000
SEED = 0


class EvaluationRefused(DomainError):
    status = 400
    code = "evaluation_refused"


class SubmissionRejected(DomainError):
    """The submission is malformed: `problems` lists every one (qc's Problem);
    the API answer carries them translated (line, code, message, params)."""

    status = 400
    code = "submission_rejected"

    def __init__(self, message: str, problems: list):
        from annotation_server.datasets.evaluation_report import translated_problems

        super().__init__(message, problems=translated_problems(problems))
        self.problems = problems


def needs_sequestered(split: str) -> bool:
    """The whole version ("") holds the sequestered split too."""
    return split in ("", SEQUESTERED_SPLIT)


def may_evaluate_split(user, split: str) -> bool:
    return split in SPLITS and (not needs_sequestered(split) or may_see_sequestered(user))


def splits_for(user) -> list[tuple[str, str]]:
    """(value, label) of the splits this user may evaluate against."""
    labels = {
        "": _("every split (whole version)"),
        "train": _("train"),
        "validation": _("validation"),
        SEQUESTERED_SPLIT: _("test (sequestered)"),
    }
    return [
        (s, labels[s])
        for s in (SEQUESTERED_SPLIT, "validation", "train", "")
        if may_evaluate_split(user, s)
    ]


def evaluations_for(version: DatasetVersion, user):
    """The version's evaluations this user may see, newest first."""
    rows = Evaluation.objects.filter(dataset_version=version).select_related(
        "created_by__profile", "job"
    )
    if not may_see_sequestered(user):
        rows = rows.exclude(split__in=["", SEQUESTERED_SPLIT])
    return rows.order_by("-created_at", "-id")


def evaluation_or_404(version: DatasetVersion, user, evaluation_id) -> Evaluation:
    found = evaluations_for(version, user).filter(pk=evaluation_id).first()
    if found is None:
        raise Http404
    return found


# ------------------------------------------------------------------ the truth


@dataclass(frozen=True)
class ManifestSource:
    sha256: str
    job_id: int | None
    package: str

    def describe(self) -> str:
        if not self.sha256:
            return (
                "no successful NIFDC export of this version holds the evaluated split; "
                "manifest_sha256 is empty"
            )
        return (
            f"MANIFEST.sha256 of the version's package {self.package} "
            f"(export job {self.job_id}, the latest successful NIFDC export holding the split)"
        )


def manifest_source(version: DatasetVersion, split: str) -> ManifestSource:
    rows = Job.objects.filter(
        kind=EXPORT_JOB_KIND,
        state=Job.State.SUCCEEDED,
        params__version_id=version.pk,
        params__format="nifdc",
    ).order_by("-finished_at", "-pk")
    wanted = [True] if needs_sequestered(split) else [False, True]
    for sequestered in wanted:
        job = next((j for j in rows if bool(j.params.get("sequestered")) == sequestered), None)
        if job is not None and (job.result or {}).get("manifest_sha256"):
            return ManifestSource(
                job.result["manifest_sha256"], job.pk, str(job.result.get("package", ""))
            )
    return ManifestSource("", None, "")


def truth_for(version: DatasetVersion, split: str, kind: str = "", *, laterality: bool = False):
    """The Truth of one split ("" = every split) of a frozen version; for a DR
    grading submission the fundus DRTruth (qc.evaluation.dr), with each image's
    laterality read from its de-identified object when `laterality`."""
    from annotation_server.datasets.package_input import build_package_input
    from qc.evaluation.truth import truth_from_package

    if not version.frozen:
        raise EvaluationRefused(
            _("Only a frozen version can be evaluated against; freeze it first.")
        )
    source = manifest_source(version, split)
    inp = build_package_input(version)
    if kind == DR_KIND:
        from qc.evaluation.dr import dr_truth_from_package, is_dr_schema

        if not is_dr_schema(inp.schema):
            raise EvaluationRefused(
                _(
                    "This version's label schema has no diabetic retinopathy grade; "
                    "a DR grading submission cannot be scored against it."
                )
            )
        sides = laterality_of(inp, split) if laterality else None
        return dr_truth_from_package(
            inp, split, manifest_sha256=source.sha256, laterality=sides
        ), source
    return truth_from_package(inp, split, manifest_sha256=source.sha256), source


LATERALITY = {"R": "OD", "L": "OS"}


def laterality_of(inp, split: str = "") -> dict[str, str]:
    """series_uid -> OD/OS ("" where the image does not say): the laterality the
    package input carries (recorded at import, frozen with the version); for a
    version frozen before it was recorded (InstanceRecord.laterality None), the
    ImageLaterality (or Laterality) of the image's de-identified DICOM object,
    read up to the pixel data."""
    import os

    import pydicom

    out: dict[str, str] = {}
    for case in inp.cases:
        if case.retired or (split and case.split != split):
            continue
        for series in case.series:
            if not series.instances:
                continue
            recorded = series.instances[0].laterality
            if recorded is not None:
                out[series.series_uid] = LATERALITY.get(recorded, "")
                continue
            path = series.instances[0].path
            try:
                if os.path.isabs(path) and os.path.exists(path):
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                else:
                    with default_storage.open(path, "rb") as fh:
                        ds = pydicom.dcmread(fh, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - an unreadable object says nothing
                continue
            side = str(getattr(ds, "ImageLaterality", "") or getattr(ds, "Laterality", ""))
            out[series.series_uid] = LATERALITY.get(side.strip().upper(), "")
    return out


def sniff(data: bytes, kind: str = "") -> str:
    """The submission's kind: the one asked for, else what its bytes look like."""
    from qc.evaluation.submission import sniff as qc_sniff

    return kind or qc_sniff(data)


def parse(data: bytes, truth, kind: str | None):
    """qc's parser; a malformed submission raises qc's SubmissionError."""
    from qc.evaluation.submission import parse_submission

    return parse_submission(data, truth, kind or None)


# ------------------------------------------------------------------ storage


def submission_key(sha256: str) -> str:
    return f"evaluations/submissions/{sha256[:2]}/{sha256}"


def report_key(sha256: str) -> str:
    return f"evaluations/reports/{sha256[:2]}/{sha256}.html"


def store(key: str, data: bytes) -> str:
    """Content-addressed: the same bytes are stored once; a key only ever holds
    the whole file (imaging.storage.save_whole)."""
    save_whole(key, ContentFile(data))
    return key


def load(key: str) -> bytes:
    with default_storage.open(key, "rb") as fh:
        return fh.read()


# ------------------------------------------------------------------ requests


def _threshold(value) -> float | None:
    if value in (None, ""):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not math.isfinite(out) or not 0.0 <= out <= 1.0:
        raise EvaluationRefused(_("The operating threshold is a probability between 0 and 1."))
    return out


def request_evaluation(
    version: DatasetVersion,
    *,
    user,
    data: bytes,
    filename: str = "",
    product: str = "",
    kind: str = "",
    split: str = SEQUESTERED_SPLIT,
    operating_threshold=None,
) -> Evaluation:
    """Check, parse, store and queue (see the module docstring). Raises
    SubmissionRejected with every problem when the submission is malformed,
    EvaluationRefused for a bad request, Http404 for a split the user may not see."""
    split = split or ""
    if split not in SPLITS or not may_evaluate_split(user, split):
        raise Http404
    if kind and kind not in KINDS:
        raise EvaluationRefused(
            _("Unknown submission kind %(kind)s; kinds: %(kinds)s")
            % {"kind": kind, "kinds": ", ".join(KINDS)}
        )
    if not data:
        raise EvaluationRefused(_("Choose the product's output file to upload."))
    limit_mb = int(getattr(settings, "REFSET_MAX_FILE_MB", 512))
    if len(data) > limit_mb * 1024 * 1024:
        raise EvaluationRefused(
            _("The file is larger than %(mb)s MB, the largest accepted.") % {"mb": limit_mb}
        )
    threshold = _threshold(operating_threshold)
    product = (product or "").strip()[:200]
    kind = sniff(data, kind)
    truth, source = truth_for(version, split, kind)
    if not (truth.images if kind == DR_KIND else truth.scans):
        raise EvaluationRefused(_("This split of the version has no scan to score against."))
    from qc.evaluation.submission import SubmissionError

    sha = hashlib.sha256(data).hexdigest()
    try:
        parsed = parse(data, truth, kind)
    except SubmissionError as err:
        audit.record(
            "dataset.evaluation_rejected",
            actor=user,
            obj=version,
            project_id=version.project_id,
            data={
                "version": version.version,
                "split": split,
                "product": product,
                "submission_sha256": sha,
                "bytes": len(data),
                "problems": len(err.problems),
                "codes": sorted({p.code for p in err.problems}),
            },
        )
        raise SubmissionRejected(
            _("The submission was not accepted: %(n)s problem(s).") % {"n": len(err.problems)},
            err.problems,
        ) from err
    store(submission_key(sha), data)
    with transaction.atomic():
        evaluation = Evaluation.objects.create(
            project=version.project,
            dataset_version=version,
            split=split,
            product=product,
            kind=parsed.kind,
            submission_name=(filename or "")[:255],
            submission_key=submission_key(sha),
            submission_sha256=sha,
            submission_bytes=len(data),
            operating_threshold=threshold,
            rule=truth.rule,
            rule_threshold=truth.threshold,
            created_by=user if getattr(user, "is_authenticated", False) else None,
        )
        job = jobs.enqueue(
            JOB_KIND, params={"evaluation_id": evaluation.pk}, project=version.project, user=user
        )
        Evaluation.objects.filter(pk=evaluation.pk).update(job=job)
        evaluation.job = job
        audit.record(
            "dataset.evaluation_requested",
            actor=user,
            obj=evaluation,
            project_id=version.project_id,
            data={
                "version": version.version,
                "split": split,
                "product": product,
                "kind": parsed.kind,
                "submission_sha256": sha,
                "bytes": len(data),
                "filename": evaluation.submission_name,
                "operating_threshold": threshold,
                "rule": truth.rule,
                "manifest_sha256": source.sha256,
                "job": job.pk,
            },
        )
    return evaluation


# ------------------------------------------------------------------ the job


def jsonable(value):
    """NaN and infinities become null (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        return jsonable(value.item())
    return value


def score(evaluation: Evaluation, *, progress=None) -> tuple[dict, str]:
    """(result, HTML report) of a stored evaluation; raises SubmissionError when
    the stored submission does not parse (cannot happen for one that was
    accepted, unless the version changed: it cannot, it is frozen)."""
    from annotation_server.datasets import evaluation_report
    from qc.evaluation import kit

    step = progress or (lambda pct, msg=None: None)
    version = evaluation.dataset_version
    data = load(evaluation.submission_key)
    truth, source = truth_for(version, evaluation.split, evaluation.kind, laterality=True)
    if evaluation.kind == DR_KIND:
        step(10, f"truth: {len(truth.images)} images")
    else:
        step(10, f"truth: {len(truth.scans)} scans, {len(truth.lesions)} reference lesions")
    parsed = parse(data, truth, evaluation.kind)
    step(20, f"parsed {parsed.kind}: {parsed.rows} rows, {len(parsed.warnings)} warnings")
    result = kit.evaluate(
        truth,
        parsed,
        product=evaluation.product,
        operating_threshold=evaluation.operating_threshold,
        bootstrap=BOOTSTRAP,
        seed=SEED,
    )
    result = jsonable(result)
    result.setdefault("conventions", {})["manifest_source"] = source.describe()
    step(80, "scored")
    html = evaluation_report.report_html(result, evaluation_report.meta_of(evaluation))
    step(95, "report rendered")
    return result, html


def run(ctx) -> dict:
    """datasets.evaluate: score the evaluation named by ctx.params."""
    from qc.evaluation.submission import SubmissionError

    evaluation = Evaluation.objects.select_related("dataset_version__project").get(
        pk=ctx.params["evaluation_id"]
    )
    if evaluation.finished:
        return {"evaluation_id": evaluation.pk, "status": evaluation.status}
    unfinished = Evaluation.objects.filter(pk=evaluation.pk).exclude(status__in=Evaluation.FINISHED)
    unfinished.update(status=Evaluation.Status.RUNNING)
    try:
        result, html = score(evaluation, progress=ctx.progress)
    except SubmissionError as err:
        problems = [p.as_dict() for p in err.problems]
        _finish(evaluation, status=Evaluation.Status.REJECTED, problems=jsonable(problems))
        return {"evaluation_id": evaluation.pk, "status": "rejected", "problems": len(problems)}
    except Exception as err:
        _finish(evaluation, status=Evaluation.Status.FAILED, error=f"{type(err).__name__}: {err}")
        raise
    digest = hashlib.sha256(html.encode("utf-8")).hexdigest()
    key = store(report_key(digest), html.encode("utf-8"))
    _finish(evaluation, status=Evaluation.Status.SUCCEEDED, result=result, report_key=key)
    # Only the row's id: the jobs API shows results to every manager of the
    # project, and a sequestered split's figures are for those who may see it.
    return {"evaluation_id": evaluation.pk, "status": "succeeded"}


def _finish(evaluation: Evaluation, *, status: str, error: str = "", **fields) -> None:
    with transaction.atomic():
        changed = (
            Evaluation.objects.filter(pk=evaluation.pk)
            .exclude(status__in=Evaluation.FINISHED)
            .update(status=status, finished_at=timezone.now(), **fields)
        )
        if not changed:
            return
        result = fields.get("result") or {}
        audit.record(
            "dataset.evaluated",
            actor=evaluation.created_by,
            obj=evaluation,
            project_id=evaluation.project_id,
            data={
                "version": evaluation.dataset_version.version,
                "split": evaluation.split,
                "product": evaluation.product,
                "kind": evaluation.kind,
                "status": status,
                "submission_sha256": evaluation.submission_sha256,
                "kit_version": result.get("kit_version", ""),
                "manifest_sha256": (result.get("dataset") or {}).get("manifest_sha256", ""),
                "figures": {
                    k: (v or {}).get("value")
                    for k, v in (result.get("figures") or {}).items()
                    if k
                    in (
                        "cpm",
                        "auc",
                        "dice",
                        "sensitivity",
                        "fp_per_scan",
                        "patient_auc",
                        "quadratic_kappa",
                    )
                },
                "problems": len(fields.get("problems") or []),
                "error": error[:500],
            },
        )
