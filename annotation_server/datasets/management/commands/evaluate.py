"""`manage.py evaluate --project SLUG --version X.Y.Z --submission FILE [--split test]
[--product NAME] [--kind detection|classification|segmentation|dr_grading] [--threshold 0.5]
[--compare OTHER_FILE] --out DIR`.

Scores a product's output against a frozen version (the evaluation kit, as the
upload page does) and writes into DIR:

- result.json: the result (qc/evaluation/result.schema.json);
- figures.csv: one row per figure, overall, per rule and per stratum level;
- report.html: the bilingual (中文 / English) report, one self-contained file;
- manifest.json: the result manifest (submission SHA-256, the version's
  MANIFEST hash and where it was taken from, kit version, rule, every convention).

The evaluation is kept and audited like one run from the page (no user: the
command runs with the server's rights, so the sequestered split is allowed, as
export_dataset --include-sequestered allows it). --compare scores a second
submission on the same scans and writes the paired-bootstrap difference of CPM
(detection) or AUC (classification) as comparison.json and comparison.csv.
A malformed submission prints every problem with its line number and exits 1.

A DR grading submission (fundus version, qc.evaluation.dr) is scored the same
way; its summary adds the per-patient AUC and the quadratic weighted kappa.
--compare is not offered for it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from annotation_server.audit import services as audit
from annotation_server.datasets import evaluation_jobs, evaluation_report
from annotation_server.datasets.models import DatasetVersion, Evaluation


class Command(BaseCommand):
    help = "Score an AI product's output against a frozen dataset version."

    def add_base_argument(self, parser, *args, **kwargs):
        # --version names the dataset version here, not Django's version
        if "--version" in args:
            return
        super().add_base_argument(parser, *args, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True)
        parser.add_argument("--version", dest="dataset_version", required=True)
        parser.add_argument("--submission", required=True, help="the product's output file")
        parser.add_argument(
            "--split",
            default="test",
            choices=list(evaluation_jobs.SPLITS),
            help='the split scored ("" = every split); default: the sequestered test split',
        )
        parser.add_argument("--product", default="")
        parser.add_argument("--kind", choices=list(evaluation_jobs.KINDS), default=None)
        parser.add_argument("--threshold", type=float, default=None, help="operating threshold")
        parser.add_argument("--compare", help="a second submission to compare with")
        parser.add_argument("--bootstrap", type=int, default=evaluation_jobs.BOOTSTRAP)
        parser.add_argument("--out", required=True)

    def handle(self, *args, **options):
        from qc.evaluation import kit
        from qc.evaluation.submission import SubmissionError

        try:
            version = DatasetVersion.objects.select_related("project").get(
                project__slug=options["project"], version=options["dataset_version"]
            )
        except DatasetVersion.DoesNotExist:
            raise CommandError(
                f"no version {options['dataset_version']} in project {options['project']}"
            )
        if not version.frozen:
            raise CommandError(f"{version} is not frozen; freeze it first (freeze_version)")
        path = Path(options["submission"])
        if not path.is_file():
            raise CommandError(f"no file {path}")
        data = path.read_bytes()
        split = options["split"]
        kind = evaluation_jobs.sniff(data, options["kind"] or "")
        if kind == evaluation_jobs.DR_KIND and options["compare"]:
            raise CommandError("--compare is not offered for DR grading submissions")
        try:
            truth, source = evaluation_jobs.truth_for(version, split, kind, laterality=True)
        except evaluation_jobs.EvaluationRefused as err:
            raise CommandError(str(err.message)) from err
        if not (truth.images if kind == evaluation_jobs.DR_KIND else truth.scans):
            raise CommandError(f"split {split!r} of {version} has no scan")
        if not source.sha256:
            self.stderr.write(f"note: {source.describe()}")
        try:
            parsed = evaluation_jobs.parse(data, truth, kind)
        except SubmissionError as err:
            raise CommandError(self._problems(path, err))
        result = evaluation_jobs.jsonable(
            kit.evaluate(
                truth,
                parsed,
                product=options["product"],
                operating_threshold=options["threshold"],
                bootstrap=options["bootstrap"],
                seed=evaluation_jobs.SEED,
            )
        )
        result.setdefault("conventions", {})["manifest_source"] = source.describe()
        evaluation = self._keep(version, split, options, path, data, parsed, result)
        meta = evaluation_report.meta_of(evaluation)
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(
            json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        with open(out / "figures.csv", "w", encoding="utf-8", newline="") as fh:
            fh.write(evaluation_report.csv_text(result))
        (out / "report.html").write_text(
            evaluation_report.report_html(result, meta), encoding="utf-8"
        )
        (out / "manifest.json").write_text(
            evaluation_report.manifest_text(result, meta), encoding="utf-8"
        )
        if options["compare"]:
            self._compare(truth, parsed, Path(options["compare"]), options, out)
        self.stdout.write(self._summary(result, evaluation, out))

    def _problems(self, path: Path, err) -> str:
        lines = [f"{path}: {len(err.problems)} problem(s); nothing was scored"]
        for p in err.problems:
            lines.append(f"  line {p.line if p.line else '-'}: [{p.code}] {p.message}")
        return "\n".join(lines)

    def _keep(self, version, split, options, path, data, parsed, result) -> Evaluation:
        """The evaluation row and its audit event, as the page keeps them."""
        sha = hashlib.sha256(data).hexdigest()
        evaluation_jobs.store(evaluation_jobs.submission_key(sha), data)
        html = evaluation_report.report_html(result, None)
        report = evaluation_jobs.store(
            evaluation_jobs.report_key(hashlib.sha256(html.encode()).hexdigest()),
            html.encode("utf-8"),
        )
        conv = result.get("conventions") or {}
        with transaction.atomic():
            evaluation = Evaluation.objects.create(
                project=version.project,
                dataset_version=version,
                split=split,
                product=options["product"][:200],
                kind=parsed.kind,
                submission_name=path.name[:255],
                submission_key=evaluation_jobs.submission_key(sha),
                submission_sha256=sha,
                submission_bytes=len(data),
                operating_threshold=options["threshold"],
                rule=str(conv.get("declared_rule") or ""),
                rule_threshold=conv.get("declared_threshold"),
                status=Evaluation.Status.SUCCEEDED,
                result=result,
                report_key=report,
                finished_at=timezone.now(),
            )
            audit.record(
                "dataset.evaluated",
                obj=evaluation,
                project_id=version.project_id,
                data={
                    "source": "cli",
                    "version": version.version,
                    "split": split,
                    "product": evaluation.product,
                    "kind": parsed.kind,
                    "status": "succeeded",
                    "submission_sha256": sha,
                    "kit_version": result.get("kit_version", ""),
                    "manifest_sha256": (result.get("dataset") or {}).get("manifest_sha256", ""),
                },
            )
        return evaluation

    def _compare(self, truth, parsed, other: Path, options, out: Path) -> None:
        from qc.evaluation import compare
        from qc.evaluation.submission import SubmissionError

        if not other.is_file():
            raise CommandError(f"no file {other}")
        try:
            second = evaluation_jobs.parse(other.read_bytes(), truth, parsed.kind)
        except SubmissionError as err:
            raise CommandError(self._problems(other, err))
        diff = evaluation_jobs.jsonable(
            compare.compare(
                truth,
                parsed,
                second,
                bootstrap=options["bootstrap"],
                seed=evaluation_jobs.SEED,
            )
        )
        (out / "comparison.json").write_text(
            json.dumps(diff, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        with open(out / "comparison.csv", "w", encoding="utf-8", newline="") as fh:
            fh.write(evaluation_report.csv_text(diff))
        d = diff.get("difference") or {}
        self.stdout.write(
            f"difference of {d.get('metric')} (a - b): {d.get('value')} "
            f"(95% CI {(d.get('ci') or [None, None])[0]}-{(d.get('ci') or [None, None])[1]}), "
            f"p = {d.get('p')}"
        )

    def _summary(self, result: dict, evaluation: Evaluation, out: Path) -> str:
        from qc.evaluation.figures import headline

        name = headline(result)
        entry = (result.get("figures") or {}).get(name) or {}
        ci = entry.get("ci") or [None, None]
        conv = result.get("conventions") or {}
        extra = []
        for other in ("patient_auc", "quadratic_kappa", "dmo_auc", "dmo_patient_auc"):
            if other in (result.get("figures") or {}):
                o = result["figures"][other] or {}
                oci = o.get("ci") or [None, None]
                extra.append(f"{other}: {o.get('value')} (95% CI {oci[0]}-{oci[1]})")
        return "\n".join(
            [
                f"evaluation {evaluation.pk}: {result.get('kind')} against "
                f"{(result.get('dataset') or {}).get('id')} v"
                f"{(result.get('dataset') or {}).get('version')} split "
                f"{(result.get('dataset') or {}).get('split') or '(all)'}",
                f"{name}: {entry.get('value')} (95% CI {ci[0]}-{ci[1]})",
                *extra,
                f"rule: {conv.get('rule') or conv.get('declared_rule')} "
                f"{conv.get('threshold') or conv.get('declared_threshold')}",
                f"written: {out / 'result.json'}, figures.csv, report.html, manifest.json",
                "",
            ]
        )
