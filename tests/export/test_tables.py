"""CSV tables: no cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io

import pytest

from export.tables import csv_writer, safe_cell


@pytest.mark.parametrize(
    "value",
    ['=HYPERLINK("http://x","y")', "+1+2", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "-1-1", "+5"],
)
def test_formula_cells_are_quoted(value):
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize(
    "value", ["SIEMENS", "西门子", "", 3, -2.5, None, "a=b", "-7.3", "-150", "-1e-05", "-.5"]
)
def test_other_cells_pass_unchanged(value):
    assert safe_cell(value) == value


def test_the_writer_neutralises_every_cell_of_every_row():
    out = io.StringIO()
    writer = csv_writer(out)
    writer.writerow(["manufacturer", "=cmd|' /C calc'!A0", 1])
    writer.writerows([["model", "@x", -1]])
    assert out.getvalue().startswith("\ufeffmanufacturer,")
    rows = list(csv.reader(io.StringIO(out.getvalue().removeprefix("\ufeff"))))
    assert rows == [["manufacturer", "'=cmd|' /C calc'!A0", "1"], ["model", "'@x", "-1"]]
