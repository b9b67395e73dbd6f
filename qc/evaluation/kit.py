"""One evaluation, put together: the scorer for the submission's kind plus what
makes the result re-derivable (kit version, the version's MANIFEST hash, the
submission's sha256, every convention). The result is JSON-ready and follows
result.schema.json next to this module.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from qc.evaluation.truth import Truth

KIT_VERSION = "1.0.0"

KIT_CONVENTIONS = {
    "max_marks_per_scan": (
        "At most 100 marks per scan are scored (LUNA16): a scan with more keeps its 100 most "
        "probable, with a warning."
    ),
    "reproducibility": (
        "The figures are re-derived from the version's MANIFEST (dataset.manifest_sha256), the "
        "submission (submission.sha256), the kit version, the seed and these conventions."
    ),
}


def schema() -> dict[str, Any]:
    """The JSON Schema every result follows."""
    text = resources.files("qc.evaluation").joinpath("result.schema.json").read_text("utf-8")
    return json.loads(text)


def dataset_block(truth: Truth) -> dict[str, str]:
    return {
        "id": truth.dataset_id,
        "version": truth.version,
        "split": truth.split,
        "manifest_sha256": truth.manifest_sha256,
    }


def submission_block(parsed: Any) -> dict[str, Any]:
    return {
        "sha256": parsed.sha256,
        "rows": int(parsed.rows),
        "warnings": [
            {"line": w.line, "code": w.code, "message": w.message, "params": dict(w.params)}
            for w in parsed.warnings
        ],
    }


def evaluate(
    truth: Truth,
    parsed: Any,
    *,
    product: str = "",
    operating_threshold: float | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score a parsed submission (qc.evaluation.submission.Parsed) against `truth`."""
    op = 0.5 if operating_threshold is None else float(operating_threshold)
    if parsed.kind == "detection":
        from qc.evaluation.detection import evaluate_detection

        body = evaluate_detection(
            truth, parsed.detections, operating_threshold=op, bootstrap=bootstrap, seed=seed
        )
    elif parsed.kind == "classification":
        from qc.evaluation.classification import evaluate_classification

        body = evaluate_classification(
            truth, parsed.scores, operating_threshold=op, bootstrap=bootstrap, seed=seed
        )
    elif parsed.kind == "dr_grading":
        from qc.evaluation.dr import evaluate_dr

        body = evaluate_dr(
            truth,
            parsed.grades,
            operating_threshold=operating_threshold,
            bootstrap=bootstrap,
            seed=seed,
            columns=parsed.columns,
        )
    elif parsed.kind == "segmentation":
        from qc.evaluation.segmentation import evaluate_segmentation

        body = evaluate_segmentation(truth, parsed.segments, bootstrap=bootstrap, seed=seed)
    else:
        raise ValueError(f"unknown submission kind {parsed.kind!r}")
    kit_conventions = (
        {"reproducibility": KIT_CONVENTIONS["reproducibility"]}
        if parsed.kind == "dr_grading"
        else KIT_CONVENTIONS
    )
    conventions = {
        "declared_rule": truth.rule,
        "declared_threshold": float(truth.threshold),
        **kit_conventions,
        **body.get("conventions", {}),
    }
    result = {
        "kit_version": KIT_VERSION,
        "kind": parsed.kind,
        "product": product,
        "dataset": dataset_block(truth),
        "submission": submission_block(parsed),
        **{k: v for k, v in body.items() if k not in ("kind", "conventions")},
        "conventions": conventions,
    }
    return result
