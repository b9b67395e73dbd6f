"""CSV tables that are safe to open in a spreadsheet.

Every CSV that RefSet hands out (downloads in the browser, tables inside an
export package) is written through `csv_writer`, which neutralises cells a
spreadsheet would run as a formula (CSV/formula injection, OWASP): a text cell
starting with "=", "+", "-", "@", a tab or a carriage return is prefixed with a
single quote. Values come from DICOM headers and user input (a scanner's
Manufacturer field can hold "=HYPERLINK(...)"), so no text cell is trusted.
Numbers stay numbers.

Plain Python: no Django.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet will show it, never run it."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """`csv.writer` with every cell passed through `safe_cell`."""

    def __init__(self, stream, **fmt: Any):
        self._writer = csv.writer(stream, **fmt)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(stream, **fmt: Any) -> SafeWriter:
    return SafeWriter(stream, **fmt)
