"""Jobs of the datasets app (registry.JOB_HANDLERS)."""

from __future__ import annotations

from annotation_server.datasets import evaluation_jobs, export_jobs


def export_version(ctx) -> dict:
    """datasets.export: write, verify and store the package's zip (export_jobs.run);
    the result names the stored zip to download."""
    return export_jobs.run(ctx)


def evaluate_submission(ctx) -> dict:
    """datasets.evaluate: score a stored submission (evaluation_jobs.run); the
    result names the Evaluation row."""
    return evaluation_jobs.run(ctx)
