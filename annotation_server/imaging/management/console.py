"""What the import commands (import_dicom, pull_pacs) print: a progress bar and
the report's summary, quarantined and rejected files."""

from __future__ import annotations

from collections.abc import Callable


def progress_bar(command, show: bool) -> Callable[[int, int], None]:
    def progress(done: int, total: int) -> None:
        if show:
            width = 30
            filled = int(width * done / max(total, 1))
            command.stdout.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending=""
            )
            command.stdout.flush()

    return progress


def print_report(command, report, elapsed: float, *, where: Callable[[str], str] = str) -> None:
    """Summary on stdout, each rejected file on stderr (`where(name)` may add context)."""
    s = report.summary()
    command.stdout.write(
        f"{s['imported']} instances imported into {s['series']} new series "
        f"({s['studies']} new studies, {s['patients']} patients); "
        f"{s['duplicates']} duplicates skipped; {s['quarantined']} quarantined; "
        f"{s['rejected']} rejected; {elapsed:.1f} s"
    )
    if s["cases"]:
        command.stdout.write(f"new cases: {', '.join(s['cases'])}")
    for f in report.files:
        if f.status == "quarantined":
            command.stdout.write(f"QUARANTINED {f.name}: {f.reason}")
    for f in report.files:
        if f.status == "rejected":
            command.stderr.write(f"REJECTED {where(f.name)}: {f.reason}")
