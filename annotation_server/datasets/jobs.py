"""Jobs of the datasets app (registry.JOB_HANDLERS)."""

from __future__ import annotations

from annotation_server.datasets import evaluation_jobs
from annotation_server.datasets.export_jobs import (
    export_root,
    folder,
    names,
    package_input,
)
from annotation_server.datasets.models import DatasetVersion
from export.manifest import file_sha256
from export.package import write_package, zip_package


def export_version(ctx) -> dict:
    """datasets.export: write the package and its zip; the result names the zip to download."""
    version = DatasetVersion.objects.select_related("project").get(pk=ctx.params["version_id"])
    fmt = ctx.params.get("format", "nifdc")
    bag = bool(ctx.params.get("bag"))
    sequestered = bool(ctx.params.get("sequestered"))
    target = folder(version) / ("sequestered" if sequestered else "shared")
    name, zip_name = names(version, fmt, bag, sequestered)
    inp = package_input(version, sequestered=sequestered)
    ctx.log(f"writing {name} ({fmt})")

    def progress(step: str, done: int, total: int) -> None:
        ctx.progress(90 * done / max(total, 1))

    root = write_package(inp, target, fmt, bag=bag, progress=progress)
    zip_path = target / zip_name
    if not zip_path.exists():
        ctx.log(f"zipping {zip_name}")
        zip_package(root, zip_path)
    ctx.progress(100)
    manifest = (root / "data" if bag else root) / "MANIFEST.sha256"
    return {
        "package": name,
        "zip": zip_path.relative_to(export_root()).as_posix(),
        "zip_bytes": zip_path.stat().st_size,
        "manifest_sha256": file_sha256(manifest),
        "format": fmt,
        "sequestered": sequestered,
    }


def evaluate_submission(ctx) -> dict:
    """datasets.evaluate: score a stored submission (evaluation_jobs.run); the
    result names the Evaluation row."""
    return evaluation_jobs.run(ctx)
