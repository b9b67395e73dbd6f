"""Every CSV download opens in Excel on Chinese Windows (UTF-8 with a BOM) and
runs no formula: written through export.tables.csv_writer, and checked here on
the bytes a browser receives."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from export.tables import BOM, csv_writer

ROOT = Path(__file__).resolve().parents[2] / "annotation_server"


def test_writer_starts_with_a_bom_and_can_leave_it_out():
    out = io.StringIO()
    csv_writer(out).writerow(["病例", "=1+1"])
    assert out.getvalue() == BOM + "病例,'=1+1\r\n"
    assert out.getvalue().encode("utf-8").startswith(b"\xef\xbb\xbf")
    bare = io.StringIO()
    csv_writer(bare, bom=False).writerow(["a"])
    assert bare.getvalue() == "a\r\n"


def _csv_modules() -> list[Path]:
    return [
        p
        for p in ROOT.rglob("*.py")
        if "migrations" not in p.parts and re.search(r"text/csv|\.csv\b", p.read_text("utf-8"))
    ]


def test_every_csv_download_goes_through_csv_writer():
    """A module that answers text/csv writes it with export.tables (BOM and
    neutralised cells), never with csv.writer or by joining strings."""
    modules = [p for p in _csv_modules() if "text/csv" in p.read_text("utf-8")]
    assert modules, "the sweep found no CSV download: it would prove nothing"
    for path in modules:
        app = path.parent
        sources = {
            p: p.read_text("utf-8") for p in app.rglob("*.py") if "migrations" not in p.parts
        }
        assert any("csv_writer" in text for text in sources.values()), (
            f"{path} answers text/csv but its app never uses export.tables.csv_writer"
        )
        for source, text in sources.items():
            assert "csv.writer(" not in text and "csv.DictWriter(" not in text, source


@pytest.mark.django_db
def test_qc_distribution_download_has_bom_and_neutralised_cells(
    project, manager, session_client_for
):
    from annotation_server.imaging.models import Series
    from tests import factories

    case = factories.CaseFactory(project=project, code="CSV1")
    Series.objects.filter(pk=case.series_id).update(manufacturer='=HYPERLINK("x")')
    response = session_client_for(manager).get(f"/projects/{project.slug}/qc/distribution.csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = response.content
    assert body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["dimension", "value", "cases", "percent"]
    cells = [cell for row in rows for cell in row]
    assert not [c for c in cells if c[:1] in "=+@"], cells
