"""Exporting a frozen version: the `datasets.export` job, its files and its download.

The job (`run`, registered through datasets/jobs.py) turns the version into
export.model.PackageInput (datasets.package_input; instance files are read from
the storage through this node's cache, never from another process's disk),
writes the package with export.package (atomic: a `.part-*` directory renamed
into place) and a deterministic zip next to it (written as `.part-*` and
renamed), verifies the package (export.verify), then stores the zip and the
verification report in the default storage (S3 or the local media folder)
under a key derived from the zip's SHA-256:
`exports/<sha256[:2]>/<sha256>/<zip name>` and `.../verification.json`.
The download page streams the zip from there, so the web node that serves it
need not be the worker that wrote it.

REFSET_EXPORT_DIR is only the worker's scratch: one folder per project; a
package and zip already in place are reused, so a job killed mid-way and run
again on the same host finishes without redoing finished files (on another
host it starts over; the stored zip is content-addressed, so storing it twice
stores it once).

The sequestered test split is in a package only when the manager who asked
holds `datasets.view_sequestered`; such packages are named `..._sequestered`
so that one never replaces the other.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from annotation_server.datasets.models import DatasetVersion
from annotation_server.datasets.querysets import SEQUESTERED_SPLIT, may_see_sequestered
from annotation_server.errors import DomainError
from annotation_server.imaging import storage
from annotation_server.jobs import services as jobs
from annotation_server.reading.models import ReadingTask
from export.manifest import file_sha256
from export.model import PackageInput
from export.package import EXPORTERS, write_package, zip_package
from export.verify import verify

JOB_KIND = "datasets.export"


class ExportRefused(DomainError):
    status = 400
    code = "export_refused"


def export_root() -> Path:
    return Path(settings.REFSET_EXPORT_DIR)


def without_sequestered(inp: PackageInput) -> PackageInput:
    hidden = {c.case_id for c in inp.cases if c.split == SEQUESTERED_SPLIT}
    if not hidden:
        return inp
    return replace(
        inp,
        cases=tuple(c for c in inp.cases if c.case_id not in hidden),
        reads=tuple(r for r in inp.reads if r.case_id not in hidden),
        reference=tuple(r for r in inp.reference if r.case_id not in hidden),
        arbitration_log=tuple(a for a in inp.arbitration_log if a.case_id not in hidden),
        qc=tuple(q for q in inp.qc if q.case_id not in hidden),
        case_labels={k: v for k, v in inp.case_labels.items() if k not in hidden},
        agreement=None,  # computed over every case; it would describe the hidden ones
        agreement_plots={},
    )


def _pseudonymised(report, names: dict[str, str]):
    """The agreement report with readers named by their package pseudonyms: the
    report names them by user id and label; the package has no user ids or names."""
    if isinstance(report, list):
        return [_pseudonymised(item, names) for item in report]
    if not isinstance(report, dict):
        return report
    out = {}
    for key, value in report.items():
        if key in ("a", "b", "reader", "id") and isinstance(value, str) and value in names:
            out[key] = names[value]
        elif key == "readers" and isinstance(value, list):
            out[key] = [
                names.get(v, v) if isinstance(v, str) else _pseudonymised(v, names) for v in value
            ]
        else:
            out[key] = _pseudonymised(value, names)
    if "id" in out and out.get("id") in names.values() and "label" in out:
        out["label"] = out["id"]
    return out


def with_agreement(inp: PackageInput, version: DatasetVersion) -> PackageInput:
    """The agreement report over the package's own cases (qc/agreement_stats.json)
    and its plots, readers under their package pseudonyms."""
    from annotation_server.agreement import services as agreement
    from annotation_server.datasets.snapshot import pseudonym

    codes = {c.case_id for c in inp.cases}
    rows = version.cases.filter(case_code__in=codes).select_related("case")
    case_ids = sorted(row.case_id for row in rows)
    if not case_ids:
        return inp
    report = agreement.report_for(version.project, case_ids)
    users = {
        str(t.reader_id): t.reader
        for t in ReadingTask.objects.filter(case_id__in=case_ids).select_related(
            "reader", "reader__profile"
        )
    }
    report = _pseudonymised(report, {uid: pseudonym(u) for uid, u in users.items()})
    # One language for the package's plots, whoever asked: the same version
    # exports to the same bytes. Chinese first, as the package's documents are.
    with translation.override("zh-hans"):
        figures = agreement.figures(report, "png")
    plots = {name if "." in name else f"{name}.png": data for name, data in figures.items()}
    return replace(inp, agreement=report, agreement_plots=plots)


def package_input(version: DatasetVersion, *, sequestered: bool) -> PackageInput:
    from annotation_server.datasets.package_input import build_package_input

    inp = build_package_input(version)
    inp = inp if sequestered else without_sequestered(inp)
    return with_agreement(inp, version)


def folder(version: DatasetVersion) -> Path:
    return export_root() / version.project.slug


def names(version: DatasetVersion, fmt: str, bag: bool, sequestered: bool) -> tuple[str, str]:
    """(package directory name, zip name) for these options."""
    base = f"{version.project.slug}_v{version.version}"
    name = base if fmt == "nifdc" else f"{base}_{fmt}"
    name += "_bag" if bag else ""
    zip_name = f"{name}{'_sequestered' if sequestered else ''}.zip"
    return name, zip_name


def queue_export(version: DatasetVersion, *, user, fmt: str = "nifdc", bag: bool = False):
    if not version.frozen:
        raise ExportRefused(_("Only a frozen version can be exported; freeze it first."))
    if fmt not in EXPORTERS:
        raise ExportRefused(
            _("Unknown export format %(format)s; formats: %(formats)s")
            % {"format": fmt, "formats": ", ".join(sorted(EXPORTERS))}
        )
    sequestered = may_see_sequestered(user)
    return jobs.enqueue(
        JOB_KIND,
        params={
            "version_id": version.pk,
            "format": fmt,
            "bag": bool(bag),
            "sequestered": sequestered,
        },
        project=version.project,
        user=user,
    )


def stored_prefix(zip_sha256: str) -> str:
    """The storage folder of a finished export's zip with this SHA-256."""
    return f"exports/{zip_sha256[:2]}/{zip_sha256}"


VERIFICATION = "verification.json"


def run(ctx) -> dict:
    """datasets.export: write the package and its zip on this worker, verify the
    package, store the zip and the verification report; the result names the
    zip's storage key (`zip_key`) that the download page streams."""
    version = DatasetVersion.objects.select_related("project").get(pk=ctx.params["version_id"])
    fmt = ctx.params.get("format", "nifdc")
    bag = bool(ctx.params.get("bag"))
    sequestered = bool(ctx.params.get("sequestered"))
    target = folder(version) / ("sequestered" if sequestered else "shared")
    name, zip_name = names(version, fmt, bag, sequestered)
    inp = package_input(version, sequestered=sequestered)
    ctx.log(f"writing {name} ({fmt})")

    def progress(step: str, done: int, total: int) -> None:
        ctx.progress(80 * done / max(total, 1))

    root = write_package(inp, target, fmt, bag=bag, progress=progress)
    zip_path = target / zip_name
    if not zip_path.exists():
        ctx.log(f"zipping {zip_name}")
        zip_package(root, zip_path)
    ctx.progress(85)
    problems = verify(root)
    manifest = (root / "data" if bag else root) / "MANIFEST.sha256"
    zip_sha = file_sha256(zip_path)
    prefix = stored_prefix(zip_sha)
    report = {
        "package": name,
        "format": fmt,
        "verified_at": timezone.now().isoformat(),
        "ok": not problems,
        "problems": problems,
        "manifest_sha256": file_sha256(manifest),
        "zip": zip_name,
        "zip_sha256": zip_sha,
        "zip_bytes": zip_path.stat().st_size,
    }
    report_key = f"{prefix}/{VERIFICATION}"
    if default_storage.exists(report_key):
        default_storage.delete(report_key)  # the same zip verified again: the newer report
    storage.save_whole(
        report_key, ContentFile(json.dumps(report, ensure_ascii=False, indent=1).encode())
    )
    if problems:
        # Never offered for download: the stored report says what is wrong.
        raise RuntimeError(
            f"the package written for {name} does not verify ({len(problems)} problem(s), "
            f"first: {problems[0]}); report stored at {report_key}"
        )
    zip_key = f"{prefix}/{zip_name}"
    ctx.log(f"storing {zip_name} ({report['zip_bytes']} bytes) as {zip_key}")
    with open(zip_path, "rb") as fh:
        created = storage.save_whole(zip_key, fh)
    if not created:
        ctx.log("the same zip was stored already (content-addressed)")
    ctx.progress(100)
    return {
        "package": name,
        "zip": zip_path.relative_to(export_root()).as_posix(),
        "zip_key": zip_key,
        "zip_sha256": zip_sha,
        "verification_key": report_key,
        "zip_bytes": report["zip_bytes"],
        "manifest_sha256": report["manifest_sha256"],
        "format": fmt,
        "sequestered": sequestered,
    }


def stored_zip(job) -> tuple[str, str] | None:
    """(storage key, download file name) of the finished job's zip, or None when
    the job did not finish or its result names no stored zip (an export from
    before zips were stored, whose zip was only on its worker's disk)."""
    result = job.result or {}
    key = result.get("zip_key")
    if job.kind != JOB_KIND or job.state != "succeeded" or not key:
        return None
    if not key.startswith("exports/") or ".." in key.split("/"):
        return None
    return key, key.rsplit("/", 1)[-1]


def verification_report(job) -> dict | None:
    """The stored verification report of the finished job's package, or None."""
    key = (job.result or {}).get("verification_key")
    if not key or not key.startswith("exports/"):
        return None
    try:
        return json.loads(storage.read(key, 1 << 24))
    except (OSError, ValueError):
        return None


def zip_for_job(job) -> Path | None:
    """The finished job's zip in this host's export scratch folder, if this host
    wrote it and still has it (the download page serves the stored copy instead:
    `stored_zip`)."""
    rel = (job.result or {}).get("zip")
    if job.kind != JOB_KIND or job.state != "succeeded" or not rel:
        return None
    path = (export_root() / rel).resolve()
    if export_root().resolve() not in path.parents or not path.is_file():
        return None
    return path
