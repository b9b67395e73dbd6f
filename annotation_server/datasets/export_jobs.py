"""Exporting a frozen version: the `datasets.export` job, its files and its download.

The job (datasets/jobs.py) turns the version into export.model.PackageInput
(datasets.package_input), writes the package with export.package (atomic: a
`.part-*` directory renamed into place) and a deterministic zip next to it
(written as `.part-*` and renamed). Packages live under REFSET_EXPORT_DIR,
one folder per project; a package and zip already in place are reused, so a
job killed mid-way and run again finishes without redoing finished files.

The sequestered test split is in a package only when the manager who asked
holds `datasets.view_sequestered`; such packages are named `..._sequestered`
so that one never replaces the other.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _

from annotation_server.datasets.models import DatasetVersion
from annotation_server.datasets.querysets import SEQUESTERED_SPLIT, may_see_sequestered
from annotation_server.errors import DomainError
from annotation_server.jobs import services as jobs
from annotation_server.reading.models import ReadingTask
from export.model import PackageInput
from export.package import EXPORTERS

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


def zip_for_job(job) -> Path | None:
    """The finished job's zip, if it is still on disk and inside the export root."""
    rel = (job.result or {}).get("zip")
    if job.kind != JOB_KIND or job.state != "succeeded" or not rel:
        return None
    path = (export_root() / rel).resolve()
    if export_root().resolve() not in path.parents or not path.is_file():
        return None
    return path
