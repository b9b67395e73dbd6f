"""CSV tables that are safe to open in a spreadsheet.

Every CSV that RefSet hands out (downloads in the browser, tables inside an
export package) is written through `csv_writer`, which neutralises cells a
spreadsheet would run as a formula (CSV/formula injection, OWASP): a text cell
starting with "=", "+", "-", "@", a tab or a carriage return is prefixed with a
single quote, unless the whole cell is a plain decimal number such as "-7.3"
(the package writer formats numbers as text before they reach the writer; a
negative coordinate is data, not a formula). Values come from DICOM headers
and user input (a scanner's Manufacturer field can hold "=HYPERLINK(...)"),
so no text cell is trusted. Numbers stay numbers.

`csv_writer` also starts the stream with a UTF-8 byte order mark (BOM):
Excel on Chinese Windows reads a CSV without one in the local code page (GBK)
and shows every Chinese cell as mojibake; with the BOM it reads UTF-8. Every
CSV download goes through it (tests/export/test_csv_tables.py checks the
downloads); pass `bom=False` only for a table that is not a file of its own.

Plain Python: no Django.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BOM = "\ufeff"
CONTENT_TYPE = "text/csv; charset=utf-8"


# A plain decimal number written as text ("-7.3", "-1e-05"): a spreadsheet reads it
# as a number, never as a formula, and tools reading the CSV (LUNA16's pandas,
# a negative coordX) must get it unchanged.
PLAIN_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def safe_cell(value: Any) -> Any:
    """`value` as a spreadsheet will show it, never run it."""
    if (
        isinstance(value, str)
        and value.startswith(FORMULA_STARTS)
        and not PLAIN_NUMBER.fullmatch(value)
    ):
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


def csv_writer(stream, *, bom: bool = True, **fmt: Any) -> SafeWriter:
    """A safe writer on `stream` (text: a file opened with newline="", or a
    Django HttpResponse), which first writes the UTF-8 BOM unless bom=False."""
    if bom:
        stream.write(BOM)
    return SafeWriter(stream, **fmt)
