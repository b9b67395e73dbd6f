"""Every manifest problem is translatable: the framework-free parser reports a
code and parameters, and the import says it through the catalogue
(photos.PROBLEM_TEXTS, the same texts as manifest.PROBLEMS), its parameters
filled in after translation, in the active language."""

from __future__ import annotations

import pytest
from django.utils import translation
from django.utils.translation import gettext

from annotation_server.imaging.ingest import photos
from annotation_server.imaging.ingest.sources import Candidate, Rejection
from annotation_server.imaging.photo import manifest

BAD = (
    "filename,patient_id,visit_id,laterality,colour\n"
    "a.png,P1,V1,XX,red\n"
    "b.png,P2,V1,OD,blue\n"
    "b.png,P2,V2,OS\n"
)


def test_the_catalogue_holds_every_problem_the_parser_reports():
    assert photos.PROBLEM_TEXTS == manifest.PROBLEMS


def test_every_problem_is_a_code_with_its_parameters():
    _rows, problems, _refused = manifest.parse_manifest_partial(BAD)
    assert {p.code for p in problems} == {"unknown_column"}
    problem = problems[0]
    assert problem.params == {"expected": ", ".join(manifest.COLUMNS)}
    assert problem.problem == f"unknown column (expected: {', '.join(manifest.COLUMNS)})"
    _rows, problems, _refused = manifest.parse_manifest_partial(
        BAD.replace(",colour", "").replace(",red", "").replace(",blue", "")
    )
    assert [(p.line, p.column, p.code, p.params) for p in problems] == [
        (2, "laterality", "bad_laterality", {"value": "'XX'"}),
        (3, "visit_id", "visit_of_another_patient", {"visit": "'V1'", "first_line": 2}),
        (4, "filename", "duplicate_filename", {"first_line": 3}),
    ]
    for p in problems:
        assert p.code in manifest.PROBLEMS and "%(" not in p.problem


def test_a_problem_is_said_through_the_catalogue_in_chinese(monkeypatch):
    _rows, problems, _refused = manifest.parse_manifest_partial(
        "filename,patient_id,visit_id,laterality\na.png,P1,V1,OD\nb.png,P2,V1,OS\n"
    )
    problem = problems[0]
    msgid = "visit %(visit)s belongs to another patient on line %(first_line)s"
    with translation.override("zh-hans"):
        assert translation.get_language() == "zh-hans"
        said = photos.problem_text(problem)
        # the zh-Hans catalogue's text (English until the lead translates it)
        assert said == gettext(msgid) % {"visit": "'V1'", "first_line": 2}
        # ... looked up by its msgid, the parameters filled into the translation
        looked_up: list[str] = []

        def catalogue(message: str) -> str:
            looked_up.append(message)
            return "【" + message.replace("belongs to another patient", "属于另一位患者") + "】"

        monkeypatch.setattr(photos, "_", catalogue)
        assert photos.problem_text(problem) == "【visit 'V1' 属于另一位患者 on line 2】"
        assert looked_up == [msgid]


@pytest.mark.django_db
def test_the_import_reports_manifest_problems_in_the_active_language(monkeypatch):
    data = b"filename,patient_id,visit_id,laterality\na.png,P1,V1,left-ish\n"
    items = [Candidate("manifest.csv", len(data), lambda: data)]
    monkeypatch.setattr(photos, "_", lambda m: "ZH:" + m)
    with translation.override("zh-hans"):
        out = photos.attach(items)
    reasons = [r.reason for r in out if isinstance(r, Rejection)]
    assert "ZH:'left-ish' is not OD or OS" in reasons
