"""What the import commands (import_dicom, pull_pacs) print: a progress bar and
the report's summary, quarantined and rejected files."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable


def printable(text: object) -> str:
    """`text` safe for a terminal: control and format characters (carriage
    return, newline, escape sequences, bidi overrides...) are shown escaped, so a
    file name cannot forge or erase a line of the report. Other scripts (Chinese
    names included) pass unchanged."""
    out = []
    for char in str(text):
        if unicodedata.category(char)[0] == "C":
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


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
        command.stdout.write(f"new cases: {printable(', '.join(s['cases']))}")
    for f in report.files:
        if f.status == "quarantined":
            command.stdout.write(f"QUARANTINED {printable(f.name)}: {printable(f.reason)}")
    for f in report.files:
        if f.status == "rejected":
            command.stderr.write(f"REJECTED {printable(where(f.name))}: {printable(f.reason)}")
