"""The manifest a manager uploads with a batch of photographs (CSV, one row per file).

Columns (header row required; names are case-insensitive, order is free):

============ ========= =========================================================
column       required  meaning
============ ========= =========================================================
filename     yes       the photograph's file name as uploaded (a relative path
                       inside an uploaded zip is fine; no absolute path, no ``..``)
patient_id   yes       the hospital's patient identifier (pseudonymised at ingest
                       with the project's key, like a DICOM PatientID)
visit_id     yes       the visit (one study per visit; ``study_id`` is accepted as
                       the same column); pseudonymised the same way
laterality   yes       OD (right eye) or OS (left eye); R/L, right/left, 右/左
                       are accepted and normalised to OD/OS
site         no        the hospital or screening site of the visit: its site code
                       (e.g. S01) or institution name, one of the project's sites;
                       every row of one visit names the same site (or none)
camera       no        the camera's make and model, e.g. "Topcon TRC-NW400"
============ ========= =========================================================

Encoding: UTF-8 (with or without BOM) or GB18030 (what Excel writes on a Chinese
Windows). Blank lines are ignored. Every problem is reported at once, each with its
1-based line number in the file, its column and what is wrong, so a manager can fix
the file in one go: ``ManifestError.problems``. A problem is a code (a key of
``PROBLEMS``) with its parameters, so the Django side can say it in the user's
language; ``ManifestProblem.problem`` is the English text.
"""

from __future__ import annotations

import csv
import io
import posixpath
from dataclasses import dataclass, field

REQUIRED = ("filename", "patient_id", "visit_id", "laterality")
OPTIONAL = ("site", "camera")
COLUMNS = REQUIRED + OPTIONAL
ALIASES = {"study_id": "visit_id", "file": "filename", "file_name": "filename", "eye": "laterality"}
LATERALITY = {
    "OD": "OD", "R": "OD", "RIGHT": "OD", "右": "OD", "右眼": "OD",
    "OS": "OS", "L": "OS", "LEFT": "OS", "左": "OS", "左眼": "OS",
}  # fmt: skip
MAX_VALUE = 64


@dataclass(frozen=True)
class ManifestRow:
    line: int
    filename: str
    patient_id: str
    visit_id: str
    laterality: str  # OD | OS
    site: str = ""
    camera: str = ""


# Every problem the parser reports, by code: its English text, with %(name)s
# placeholders filled from the problem's params. The Django side translates the
# same texts (imaging.ingest.photos.PROBLEM_TEXTS, the catalogue's msgids: a test
# keeps the two equal), so this module stays free of Django.
PROBLEMS = {
    "encoding": "not UTF-8 or GB18030 text (%(reason)s)",
    "csv": "not valid CSV: %(error)s",
    "empty_file": "the manifest is empty (no header row)",
    "no_rows": "no photographs listed",
    "missing_column": "required column is missing",
    "unnamed_column": "column without a name",
    "unknown_column": "unknown column (expected: %(expected)s)",
    "duplicate_column": "column appears twice",
    "field_count": "%(found)s fields, the header has %(expected)s",
    "empty": "empty",
    "too_long": "longer than %(max)s characters",
    "absolute_filename": "must be a relative name (no /, .. or drive)",
    "duplicate_filename": "listed twice (also on line %(first_line)s)",
    "bad_laterality": "%(value)s is not OD or OS",
    "visit_of_another_patient": "visit %(visit)s belongs to another patient on line %(first_line)s",
    "visit_at_two_sites": "visit %(visit)s is at site %(site)s on line %(first_line)s",
}


@dataclass(frozen=True)
class ManifestProblem:
    line: int  # 1-based line in the file
    column: str  # the column's name ("" for the whole row)
    code: str  # a key of PROBLEMS
    params: dict = field(default_factory=dict)  # its placeholders' values

    @property
    def problem(self) -> str:
        """The problem in English (PROBLEMS[code] with its params)."""
        return PROBLEMS[self.code] % self.params if self.params else PROBLEMS[self.code]

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.problem}"


class ManifestError(ValueError):
    def __init__(self, problems: list[ManifestProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.lstrip("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise ManifestError([ManifestProblem(1, "", "encoding", {"reason": exc.reason})])


def _key(name: str) -> str:
    k = name.strip().lower().replace(" ", "_").replace("-", "_")
    return ALIASES.get(k, k)


def parse_manifest(data: bytes | str) -> list[ManifestRow]:
    """The manifest's rows, or ManifestError listing every problem found."""
    rows, problems, _ = parse_manifest_partial(data)
    if problems:
        raise ManifestError(problems)
    return rows


def parse_manifest_partial(
    data: bytes | str,
) -> tuple[list[ManifestRow], list[ManifestProblem], dict[str, int]]:
    """The good rows, every problem, and the file names of the rows refused
    (normalised name -> line), so an import can take the good rows, refuse the
    photographs of the bad ones by their line, and report every problem."""
    try:
        text = _text(data)
    except ManifestError as exc:
        return [], exc.problems, {}
    reader = csv.reader(io.StringIO(text, newline=""))
    problems: list[ManifestProblem] = []
    header: list[str] | None = None
    rows: list[ManifestRow] = []
    seen_file: dict[str, int] = {}
    visit_owner: dict[str, tuple[str, int]] = {}
    visit_site: dict[str, tuple[str, int]] = {}
    refused: dict[str, int] = {}
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [_key(c) for c in record]
                problems.extend(_header_problems(header, line))
                if any(p.line == line for p in problems):
                    break
                continue
            rows_or_none = _row(record, header, line, problems, seen_file, visit_owner, visit_site)
            if rows_or_none is not None:
                rows.append(rows_or_none)
            elif "filename" in header and len(record) == len(header):
                name = record[header.index("filename")].strip().replace("\\", "/")
                if name and not name.startswith("/"):
                    refused.setdefault(posixpath.normpath(name), line)
    except csv.Error as exc:
        problems.append(ManifestProblem(start, "", "csv", {"error": str(exc)}))
    if header is None and not problems:
        problems.append(ManifestProblem(1, "", "empty_file"))
    elif header is not None and not rows and not problems:
        problems.append(ManifestProblem(start, "", "no_rows"))
    return rows, problems, refused


def _header_problems(header: list[str], line: int) -> list[ManifestProblem]:
    out = []
    for name in REQUIRED:
        if name not in header:
            out.append(ManifestProblem(line, name, "missing_column"))
    for i, name in enumerate(header):
        if not name:
            out.append(ManifestProblem(line, f"#{i + 1}", "unnamed_column"))
        elif name not in COLUMNS:
            out.append(
                ManifestProblem(line, name, "unknown_column", {"expected": ", ".join(COLUMNS)})
            )
        elif header.index(name) != i:
            out.append(ManifestProblem(line, name, "duplicate_column"))
    return out


def _row(
    record: list[str],
    header: list[str],
    line: int,
    problems: list[ManifestProblem],
    seen_file: dict[str, int],
    visit_owner: dict[str, tuple[str, int]],
    visit_site: dict[str, tuple[str, int]],
) -> ManifestRow | None:
    if len(record) != len(header):
        problems.append(
            ManifestProblem(
                line, "", "field_count", {"found": len(record), "expected": len(header)}
            )
        )
        return None
    values = {name: cell.strip() for name, cell in zip(header, record, strict=True)}
    before = len(problems)
    for name in REQUIRED:
        if not values.get(name):
            problems.append(ManifestProblem(line, name, "empty"))
    for name in COLUMNS:
        if len(values.get(name, "")) > MAX_VALUE and name != "filename":
            problems.append(ManifestProblem(line, name, "too_long", {"max": MAX_VALUE}))
    fname = values.get("filename", "").replace("\\", "/")
    if fname:
        norm = posixpath.normpath(fname)
        if fname.startswith("/") or norm.startswith("..") or ":" in fname.split("/")[0]:
            problems.append(ManifestProblem(line, "filename", "absolute_filename"))
        elif norm in seen_file:
            problems.append(
                ManifestProblem(
                    line, "filename", "duplicate_filename", {"first_line": seen_file[norm]}
                )
            )
        else:
            seen_file[norm] = line
        fname = norm
    lat_raw = values.get("laterality", "")
    lat = LATERALITY.get(lat_raw.upper()) if lat_raw else None
    if lat_raw and lat is None:
        problems.append(
            ManifestProblem(line, "laterality", "bad_laterality", {"value": repr(lat_raw)})
        )
    pid, vid = values.get("patient_id", ""), values.get("visit_id", "")
    if pid and vid:
        owner = visit_owner.setdefault(vid, (pid, line))
        if owner[0] != pid:
            problems.append(
                ManifestProblem(
                    line,
                    "visit_id",
                    "visit_of_another_patient",
                    {"visit": repr(vid), "first_line": owner[1]},
                )
            )
    site = values.get("site", "")
    if vid and site:
        placed = visit_site.setdefault(vid, (site, line))
        if placed[0].upper() != site.upper():
            problems.append(
                ManifestProblem(
                    line,
                    "site",
                    "visit_at_two_sites",
                    {"visit": repr(vid), "site": repr(placed[0]), "first_line": placed[1]},
                )
            )
    if len(problems) > before:
        return None
    return ManifestRow(
        line=line,
        filename=fname,
        patient_id=pid,
        visit_id=vid,
        laterality=lat or "",
        site=site,
        camera=values.get("camera", ""),
    )
