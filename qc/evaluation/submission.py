"""A product's output, parsed and checked against the version it is scored on.

Three kinds of submission (`parse_submission` sniffs which when not told):

- detection: LUNA16 result form, CSV with the header
  `seriesuid,coordX,coordY,coordZ,probability` (names compared without case or
  surrounding blanks, columns in any order), world coordinates in mm
  (patient space, DICOM LPS), one mark per row;
- classification: CSV `case_id,probability` or `seriesuid,probability`; a
  series row scores its case, and two series of one case must agree (the same
  score given twice is one score, different scores are a problem);
- dr_grading: CSV with an image column (`case_id` or `seriesuid`) and a
  predicted DR grade (`dr_grade`: 0-4 or ungradable) and/or a referable-DR
  probability (`referable_probability`), optional `dmo` and/or
  `dmo_probability` (parse_dr_grading);
- segmentation: DICOM SEG objects (a mapping of file names to bytes, a single
  SEG, or a zip of them), one or more per series, on the version's
  de-identified images.

CSV files are UTF-8 with or without a byte-order mark; a line is one record
(no line breaks inside quoted fields), blank lines are skipped but counted, and
line 1 is the header. Every problem of a file is collected before anything is
rejected: `SubmissionError.problems` lists them all, each with its 1-based line
(None for the file as a whole), a stable `code`, an English `message` and the
`params` the message is made from (what the app translates). Codes:

- missing_columns / extra_columns: of the header (line 1) or of a row that has
  fewer or more fields than the header;
- unknown_series / unknown_case: an id that is not in the scored split;
- not_a_number: an empty or non-numeric coordinate or probability;
- nan: NaN or an infinite value;
- probability_range: a probability outside [0, 1];
- duplicate_row: a second mark at the same coordinates on the same series, a
  second score for a case (or series), or two series of a case scored
  differently;
- outside_volume: a mark outside its scan (`Scan.contains_mm`, half a voxel of
  margin; vectorised per scan by `voxel_indices`);
- empty: no header at all (a header without rows is a product that marked
  nothing: valid for detection; for classification every case is missing);
- encoding: a line that is not UTF-8 (reported once per line, the line skipped);
- missing_cases: cases of the split that no row of a classification file names
  (a row naming a case with a bad score is reported as that row's problem);
- not_seg / seg_wrong_series / seg_geometry: a file that is not a DICOM SEG, a
  SEG whose referenced series is not a scan of the split, frames whose plane
  (orientation, pixel spacing, rows and columns, position on a slice of the
  scan) does not fit the scan. A frame is placed by its ImagePositionPatient
  through the scan's grid, not by its ReferencedSOPInstanceUID (the Truth
  holds the geometry, not instance UIDs); a segment is binary above half of
  MaximumFractionalValue when FRACTIONAL, and LABELMAP SEGs split by value;
- the SEG's per-segment probability: `probability=0.83` (or `p=`, `prob:`) in
  the segment's description, tracking id or label, else None;
- missing_value / grade_range / dmo_value (dr_grading): an empty required
  cell, a grade that is not 0-4 or ungradable, a DMO that is not absent,
  present or ungradable (a bad dmo_probability is not_a_number / nan /
  probability_range); skipped_images (a warning): images without a row;
- too_many_marks (a warning, not an error): LUNA16 scores at most 100 marks per
  scan; beyond that the 100 most probable are kept (ties: the earlier line).

`Parsed.sha256` is the sha256 of the submitted bytes; for a mapping of files it
is the sha256 of the UTF-8 text made of one line `NAME<TAB>SHA256\\n` per file,
names sorted (what `sha256sum * | awk '{print $2"\\t"$1}' | LC_ALL=C sort |
sha256sum` gives for plain names).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from qc.raster import SparseMask

MAX_MARKS_PER_SCAN = 100
DETECTION_COLUMNS = ("seriesuid", "coordx", "coordy", "coordz", "probability")
# Segmentation Storage and Label Map Segmentation Storage.
SEG_SOP_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"})
# Geometry tolerances for SEG frames against the scan: orientation cosines,
# pixel spacing (relative) and the frame origin's offset in voxels.
COSINE_TOL = 1e-3
SPACING_TOL = 1e-3
VOXEL_TOL = 0.05
_PROBABILITY = re.compile(r"(?:probability|prob|p)\s*[=:]\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)")


@dataclass(frozen=True)
class Problem:
    line: int | None
    code: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "code": self.code,
            "message": self.message,
            "params": self.params,
        }


class SubmissionError(ValueError):
    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        head = "; ".join(
            (f"line {p.line}: " if p.line else "") + p.message for p in self.problems[:5]
        )
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"{len(self.problems)} problem(s) in the submission: {head}{more}")


@dataclass(frozen=True)
class Detection:
    series_uid: str
    x: float
    y: float
    z: float
    probability: float
    line: int


@dataclass(frozen=True)
class CaseScore:
    case_id: str
    probability: float
    line: int


@dataclass(frozen=True)
class SegLesion:
    """One connected component of one segment, on the scan's grid (slice, row, col)."""

    series_uid: str
    segment_number: int
    label: str
    mask: SparseMask
    probability: float | None


@dataclass(frozen=True)
class ImageGrade:
    """One row of a DR grading submission: the product's output for one image (case)."""

    case_id: str
    grade: int | str | None  # 0-4 | "ungradable" | None (no grade column)
    probability: float | None  # referable-DR probability, None when not given
    dmo: str | None  # absent | present | ungradable | None
    line: int
    dmo_probability: float | None = None  # probability of macular oedema present


@dataclass(frozen=True)
class Parsed:
    kind: str  # detection | classification | segmentation
    sha256: str
    detections: tuple[Detection, ...] = ()
    scores: tuple[CaseScore, ...] = ()
    segments: tuple[SegLesion, ...] = ()
    grades: tuple[ImageGrade, ...] = ()
    columns: tuple[str, ...] = ()  # dr_grading: the value columns given (grade, probability, dmo)
    warnings: tuple[Problem, ...] = ()
    rows: int = 0


# --------------------------------------------------------------------------- CSV


def _lines(data: bytes, problems: list[Problem]) -> list[tuple[int, str]]:
    """Non-blank lines as (line number, text); undecodable lines become problems."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    out = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(
                Problem(
                    number,
                    "encoding",
                    f"line {number} is not UTF-8 (byte {err.start + 1} of the line)",
                    {"line": number, "byte": err.start + 1, "encoding": "utf-8"},
                )
            )
            continue
        if text.strip():
            out.append((number, text))
    return out


def _fields(text: str) -> list[str]:
    return [f.strip() for f in next(csv.reader([text]))]


def _header(lines: list[tuple[int, str]], problems: list[Problem]) -> tuple[int, list[str]] | None:
    if not lines:
        problems.append(Problem(None, "empty", "the file is empty (no header)", {}))
        return None
    number, text = lines[0]
    return number, [f.lower() for f in _fields(text)]


def _check_header(
    number: int, names: list[str], required: tuple[str, ...], problems: list[Problem]
) -> bool:
    """Missing and extra (or repeated) columns; True when every required one is there."""
    missing = [c for c in required if c not in names]
    seen: set[str] = set()
    extra = []
    for n in names:
        if n not in required or n in seen:
            extra.append(n)
        seen.add(n)
    if missing:
        problems.append(
            Problem(
                number,
                "missing_columns",
                f"the header lacks the column(s) {', '.join(missing)}",
                {"line": number, "missing": missing, "expected": list(required), "found": names},
            )
        )
    if extra:
        problems.append(
            Problem(
                number,
                "extra_columns",
                f"the header has unexpected or repeated column(s) {', '.join(extra)}",
                {"line": number, "extra": extra, "expected": list(required), "found": names},
            )
        )
    return not missing


def _row_width(number: int, values: list[str], width: int, problems: list[Problem]) -> bool:
    if len(values) == width:
        return True
    code = "missing_columns" if len(values) < width else "extra_columns"
    problems.append(
        Problem(
            number,
            code,
            f"line {number} has {len(values)} field(s), the header {width}",
            {"line": number, "expected": width, "found": len(values)},
        )
    )
    return False


def _number(number: int, column: str, value: str, problems: list[Problem]) -> float | None:
    try:
        v = float(value)
    except ValueError:
        problems.append(
            Problem(
                number,
                "not_a_number",
                f"line {number}: {column} {value!r} is not a number",
                {"line": number, "column": column, "value": value},
            )
        )
        return None
    if not math.isfinite(v):
        problems.append(
            Problem(
                number,
                "nan",
                f"line {number}: {column} is {value!r}, not a finite number",
                {"line": number, "column": column, "value": value},
            )
        )
        return None
    return v


def _probability(number: int, column: str, value: str, problems: list[Problem]) -> float | None:
    p = _number(number, column, value, problems)
    if p is not None and not 0.0 <= p <= 1.0:
        problems.append(
            Problem(
                number,
                "probability_range",
                f"line {number}: probability {value} is outside [0, 1]",
                {"line": number, "column": column, "value": value},
            )
        )
        return None
    return p


def parse_detections(data: bytes, truth, *, max_per_scan: int = MAX_MARKS_PER_SCAN) -> Parsed:
    problems: list[Problem] = []
    lines = _lines(data, problems)
    head = _header(lines, problems)
    if head is None or not _check_header(*head, DETECTION_COLUMNS, problems):
        raise SubmissionError(problems)
    number, names = head
    where = {c: names.index(c) for c in DETECTION_COLUMNS}
    pending: list[Detection] = []  # rows whose fields are all valid
    for number, text in lines[1:]:
        values = _fields(text)
        if not _row_width(number, values, len(names), problems):
            continue
        uid = values[where["seriesuid"]]
        scan = truth.scan(uid)
        if scan is None:
            problems.append(
                Problem(
                    number,
                    "unknown_series",
                    f"line {number}: series {uid!r} is not a scan of this evaluation",
                    {"line": number, "column": "seriesuid", "value": uid},
                )
            )
        coords = [
            _number(number, names[where[c]], values[where[c]], problems)
            for c in ("coordx", "coordy", "coordz")
        ]
        p = _probability(
            number, names[where["probability"]], values[where["probability"]], problems
        )
        if scan is None or p is None or any(c is None for c in coords):
            continue
        x, y, z = coords  # type: ignore[misc]
        pending.append(Detection(uid, x, y, z, p, number))
    marks = _place(pending, truth, problems)
    if problems:
        problems.sort(key=lambda q: q.line or 0)  # stable: per line in the order checked
        raise SubmissionError(problems)
    kept, warnings = _cap(marks, max_per_scan)
    return Parsed(
        kind="detection",
        sha256=hashlib.sha256(data).hexdigest(),
        detections=tuple(kept),
        warnings=tuple(warnings),
        rows=len(lines) - 1,
    )


def voxel_indices(grid, points: np.ndarray) -> np.ndarray:
    """(n, 3) fractional (slice, col, row) of (n, 3) patient-space points: Grid.to_index
    vectorised (the same interpolation between slices, the same extrapolation outside)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    pos = np.asarray(grid.positions, dtype=float).reshape(-1, 3)
    rc = np.asarray(grid.row_cosine, dtype=float)
    cc = np.asarray(grid.column_cosine, dtype=float)
    normal = np.cross(rc, cc)
    along = pos @ normal
    n = len(pos)
    if n == 1:
        s = np.zeros(len(pts))
        origin = np.broadcast_to(pos[0], pts.shape)
    else:
        h = pts @ normal
        order = np.argsort(along)
        inside = (h >= along[order[0]]) & (h <= along[order[-1]])
        step = (along[-1] - along[0]) / (n - 1)
        outside = (h - along[0]) / step if step else np.zeros(len(pts))
        s = np.where(inside, np.interp(h, along[order], order.astype(float)), outside)
        i = np.clip(np.floor(s).astype(int), 0, n - 2)
        origin = pos[i] + (pos[i + 1] - pos[i]) * (s - i)[:, None]
    d = pts - origin
    col = d @ rc / grid.pixel_spacing[1]
    row = d @ cc / grid.pixel_spacing[0]
    return np.column_stack([s, col, row])


def _place(pending: list[Detection], truth, problems: list[Problem]) -> list[Detection]:
    """Marks inside their scan (as Scan.contains_mm, vectorised per scan), without
    repeats; the others become problems."""
    by_scan: dict[str, list[Detection]] = {}
    for d in pending:
        by_scan.setdefault(d.series_uid, []).append(d)
    inside: set[int] = set()
    for uid, group in by_scan.items():
        scan = truth.scan(uid)
        idx = voxel_indices(scan.grid, np.array([(d.x, d.y, d.z) for d in group]))
        n, rows, cols = scan.shape
        limit = np.array([n - 1, cols - 1, rows - 1], dtype=float) + 0.5
        ok = np.all((idx >= -0.5) & (idx <= limit), axis=1)
        for d, good, (s, col, row) in zip(group, ok.tolist(), idx.tolist(), strict=True):
            if good:
                inside.add(d.line)
                continue
            problems.append(
                Problem(
                    d.line,
                    "outside_volume",
                    f"line {d.line}: ({d.x}, {d.y}, {d.z}) mm lies outside series {uid}",
                    {
                        "line": d.line,
                        "series_uid": uid,
                        "x": d.x,
                        "y": d.y,
                        "z": d.z,
                        "index": [round(s, 2), round(row, 2), round(col, 2)],
                        "shape": list(scan.shape),
                    },
                )
            )
    marks = []
    seen: dict[tuple[str, float, float, float], int] = {}
    for d in pending:
        if d.line not in inside:
            continue
        key = (d.series_uid, d.x, d.y, d.z)
        if key in seen:
            problems.append(
                Problem(
                    d.line,
                    "duplicate_row",
                    f"line {d.line} repeats the mark of line {seen[key]} on series {d.series_uid}",
                    {"line": d.line, "first_line": seen[key], "series_uid": d.series_uid},
                )
            )
            continue
        seen[key] = d.line
        marks.append(d)
    return marks


def _cap(marks: list[Detection], limit: int) -> tuple[list[Detection], list[Problem]]:
    by_scan: dict[str, list[Detection]] = {}
    for m in marks:
        by_scan.setdefault(m.series_uid, []).append(m)
    drop: set[int] = set()
    warnings = []
    for uid, group in by_scan.items():
        if len(group) <= limit:
            continue
        ranked = sorted(group, key=lambda m: (-m.probability, m.line))
        drop.update(m.line for m in ranked[limit:])
        warnings.append(
            Problem(
                None,
                "too_many_marks",
                f"series {uid} has {len(group)} marks; the {limit} most probable are scored",
                {"series_uid": uid, "marks": len(group), "kept": limit},
            )
        )
    return [m for m in marks if m.line not in drop], warnings


def parse_classification(data: bytes, truth) -> Parsed:
    problems: list[Problem] = []
    lines = _lines(data, problems)
    head = _header(lines, problems)
    if head is None:
        raise SubmissionError(problems)
    number, names = head
    id_column = "seriesuid" if "seriesuid" in names and "case_id" not in names else "case_id"
    if "seriesuid" in names and "case_id" in names:
        problems.append(
            Problem(
                number,
                "extra_columns",
                "give case_id or seriesuid, not both",
                {
                    "line": number,
                    "extra": ["seriesuid"],
                    "expected": ["case_id", "probability"],
                    "found": names,
                },
            )
        )
        names_ok = _check_header(
            number, [n for n in names if n != "seriesuid"], ("case_id", "probability"), problems
        )
    else:
        names_ok = _check_header(number, names, (id_column, "probability"), problems)
    if not names_ok:
        raise SubmissionError(problems)
    i_id, i_p = names.index(id_column), names.index("probability")
    cases = {s.case_id for s in truth.scans}
    scores: dict[str, CaseScore] = {}
    by_series: dict[str, int] = {}
    named: set[str] = set()  # cases some row names (a bad value there is its own problem)
    for number, text in lines[1:]:
        values = _fields(text)
        if not _row_width(number, values, len(names), problems):
            continue
        key = values[i_id]
        if id_column == "seriesuid":
            scan = truth.scan(key)
            case_id = scan.case_id if scan else None
            if scan is None:
                problems.append(
                    Problem(
                        number,
                        "unknown_series",
                        f"line {number}: series {key!r} is not a scan of this evaluation",
                        {"line": number, "column": "seriesuid", "value": key},
                    )
                )
        else:
            case_id = key if key in cases else None
            if case_id is None:
                problems.append(
                    Problem(
                        number,
                        "unknown_case",
                        f"line {number}: case {key!r} is not a case of this evaluation",
                        {"line": number, "column": "case_id", "value": key},
                    )
                )
        p = _probability(number, names[i_p], values[i_p], problems)
        if case_id is not None:
            named.add(case_id)
        if case_id is None or p is None:
            continue
        if id_column == "seriesuid" and key in by_series:
            problems.append(
                Problem(
                    number,
                    "duplicate_row",
                    f"line {number} scores series {key} again (first on line {by_series[key]})",
                    {"line": number, "first_line": by_series[key], "series_uid": key},
                )
            )
            continue
        by_series[key] = number
        first = scores.get(case_id)
        if first is None:
            scores[case_id] = CaseScore(case_id, p, number)
        elif id_column == "case_id":
            problems.append(
                Problem(
                    number,
                    "duplicate_row",
                    f"line {number} scores case {case_id} again (first on line {first.line})",
                    {"line": number, "first_line": first.line, "case_id": case_id},
                )
            )
        elif first.probability != p:
            problems.append(
                Problem(
                    number,
                    "duplicate_row",
                    f"line {number}: series {key} gives case {case_id} the score {p}, "
                    f"line {first.line} gave {first.probability}",
                    {
                        "line": number,
                        "first_line": first.line,
                        "case_id": case_id,
                        "series_uid": key,
                        "value": p,
                        "first_value": first.probability,
                    },
                )
            )
    missing = sorted(cases - named)
    if missing:
        problems.append(
            Problem(
                None,
                "missing_cases",
                f"{len(missing)} case(s) have no score: {', '.join(missing[:10])}"
                + (" ..." if len(missing) > 10 else ""),
                {"cases": missing, "count": len(missing)},
            )
        )
    if problems:
        raise SubmissionError(problems)
    return Parsed(
        kind="classification",
        sha256=hashlib.sha256(data).hexdigest(),
        scores=tuple(sorted(scores.values(), key=lambda s: s.line)),
        rows=len(lines) - 1,
    )


# --------------------------------------------------------------------------- DR grading

# Column names (compared without case or surrounding blanks); the first of each
# tuple is the documented one, the others are accepted aliases.
DR_ID_COLUMNS = ("case_id", "seriesuid")
DR_GRADE_COLUMNS = ("dr_grade", "grade")
DR_PROBABILITY_COLUMNS = ("referable_probability", "referable_dr_probability", "probability")
DR_DMO_COLUMN = "dmo"
DR_DMO_PROBABILITY_COLUMNS = ("dmo_probability", "dme_probability")
DR_GRADES = ("0", "1", "2", "3", "4")
DR_UNGRADABLE = "ungradable"
DR_DMO_VALUES = ("absent", "present", "ungradable")


def _dr_column(names: list[str], choices: tuple[str, ...]) -> str | None:
    return next((c for c in choices if c in names), None)


def _missing_value(number: int, column: str) -> Problem:
    return Problem(
        number,
        "missing_value",
        f"line {number}: {column} is empty",
        {"line": number, "column": column},
    )


def parse_dr_grading(data: bytes, truth) -> Parsed:
    """A diabetic-retinopathy grading product's CSV (qc.evaluation.dr):

    - one image identifier column: `case_id` (the package's case id) or
      `seriesuid` (the image's series, which names its case);
    - `dr_grade` (alias `grade`): 0, 1, 2, 3, 4 or `ungradable`; and/or
      `referable_probability` (aliases `referable_dr_probability`,
      `probability`): the referable-DR probability in [0, 1]; at least one of
      the two columns; with both, the probability may be empty where the grade
      is `ungradable`;
    - optional `dmo`: the product's macular oedema call: absent, present,
      ungradable or empty (no call);
    - optional `dmo_probability` (alias `dme_probability`): the probability in
      [0, 1] that macular oedema is present; it may be empty only where `dmo`
      is `ungradable`. With a `dmo` and/or `dmo_probability` column the
      evaluation adds the macular oedema figures (qc.evaluation.dr).

    Row problems name their line and column: unknown_case / unknown_series,
    missing_value (an empty required cell), grade_range (a grade that is not
    0-4 or ungradable), dmo_value, not_a_number / nan / probability_range,
    duplicate_row. Images of the split without a row are not an error: the
    product skipped them; they are counted and named in the `skipped_images`
    warning."""
    problems: list[Problem] = []
    lines = _lines(data, problems)
    head = _header(lines, problems)
    if head is None:
        raise SubmissionError(problems)
    number, names = head
    id_column = _dr_column(names, DR_ID_COLUMNS)
    grade_column = _dr_column(names, DR_GRADE_COLUMNS)
    prob_column = _dr_column(names, DR_PROBABILITY_COLUMNS)
    dmo_column = DR_DMO_COLUMN if DR_DMO_COLUMN in names else None
    dmo_prob_column = _dr_column(names, DR_DMO_PROBABILITY_COLUMNS)
    expected = [id_column or "case_id", grade_column or "dr_grade"]
    expected.append(prob_column or "referable_probability")
    expected += [DR_DMO_COLUMN, DR_DMO_PROBABILITY_COLUMNS[0]]
    missing = []
    if id_column is None:
        missing.append("case_id")
    if grade_column is None and prob_column is None:
        missing.append("dr_grade|referable_probability")
    if missing:
        problems.append(
            Problem(
                number,
                "missing_columns",
                f"the header lacks the column(s) {', '.join(missing)}",
                {"line": number, "missing": missing, "expected": expected, "found": names},
            )
        )
    known = {id_column, grade_column, prob_column, dmo_column, dmo_prob_column} - {None}
    seen: set[str] = set()
    extra = []
    for n in names:
        if n not in known or n in seen:
            extra.append(n)
        seen.add(n)
    if extra:
        problems.append(
            Problem(
                number,
                "extra_columns",
                f"the header has unexpected or repeated column(s) {', '.join(extra)}",
                {"line": number, "extra": extra, "expected": expected, "found": names},
            )
        )
    if problems:
        raise SubmissionError(problems)
    assert id_column is not None
    where = {n: names.index(n) for n in known}
    rows: dict[str, ImageGrade] = {}
    for number, text in lines[1:]:
        values = _fields(text)
        if not _row_width(number, values, len(names), problems):
            continue
        key = values[where[id_column]]
        image = truth.case(key) if id_column == "case_id" else truth.by_series(key)
        if image is None:
            code = "unknown_case" if id_column == "case_id" else "unknown_series"
            what = "case" if id_column == "case_id" else "series"
            problems.append(
                Problem(
                    number,
                    code,
                    f"line {number}: {what} {key!r} is not a {what} of this evaluation",
                    {"line": number, "column": id_column, "value": key},
                )
            )
        ok = True
        grade: int | str | None = None
        if grade_column is not None:
            raw = values[where[grade_column]]
            low = raw.lower()
            if not raw:
                problems.append(_missing_value(number, grade_column))
                ok = False
            elif low == DR_UNGRADABLE:
                grade = DR_UNGRADABLE
            elif low in DR_GRADES:
                grade = int(low)
            else:
                problems.append(
                    Problem(
                        number,
                        "grade_range",
                        f"line {number}: {grade_column} {raw!r} is not 0-4 or ungradable",
                        {"line": number, "column": grade_column, "value": raw},
                    )
                )
                ok = False
        probability = None
        if prob_column is not None:
            raw = values[where[prob_column]]
            if not raw:
                if grade != DR_UNGRADABLE:
                    if grade_column is None or grade is not None:
                        problems.append(_missing_value(number, prob_column))
                    ok = False
            else:
                probability = _probability(number, prob_column, raw, problems)
                ok = ok and probability is not None
        dmo = None
        if dmo_column is not None:
            raw = values[where[dmo_column]].lower()
            if raw in DR_DMO_VALUES:
                dmo = raw
            elif raw:
                problems.append(
                    Problem(
                        number,
                        "dmo_value",
                        f"line {number}: dmo {raw!r} is not absent, present or ungradable",
                        {"line": number, "column": dmo_column, "value": raw},
                    )
                )
                ok = False
        dmo_probability = None
        if dmo_prob_column is not None:
            raw = values[where[dmo_prob_column]]
            if not raw:
                if dmo != DR_UNGRADABLE:
                    problems.append(_missing_value(number, dmo_prob_column))
                    ok = False
            else:
                dmo_probability = _probability(number, dmo_prob_column, raw, problems)
                ok = ok and dmo_probability is not None
        if image is None:
            continue
        first = rows.get(image.case_id)
        if first is not None:
            problems.append(
                Problem(
                    number,
                    "duplicate_row",
                    f"line {number} names image {image.case_id} again (first on line {first.line})",
                    {"line": number, "first_line": first.line, "case_id": image.case_id},
                )
            )
            continue
        if ok:
            rows[image.case_id] = ImageGrade(
                image.case_id, grade, probability, dmo, number, dmo_probability
            )
        else:  # the row's own problems are reported; keep it from counting as skipped
            rows[image.case_id] = ImageGrade(image.case_id, None, None, None, number)
    if problems:
        problems.sort(key=lambda q: q.line or 0)
        raise SubmissionError(problems)
    skipped = [i.case_id for i in truth.images if i.case_id not in rows]
    warnings = []
    if skipped:
        warnings.append(
            Problem(
                None,
                "skipped_images",
                f"{len(skipped)} image(s) have no row (skipped by the product): "
                + ", ".join(skipped[:10])
                + (" ..." if len(skipped) > 10 else ""),
                {"count": len(skipped), "cases": skipped[:50]},
            )
        )
    columns = tuple(
        c
        for c, col in (
            ("grade", grade_column),
            ("probability", prob_column),
            ("dmo", dmo_column),
            ("dmo_probability", dmo_prob_column),
        )
        if col
    )
    return Parsed(
        kind="dr_grading",
        sha256=hashlib.sha256(data).hexdigest(),
        grades=tuple(sorted(rows.values(), key=lambda r: r.line)),
        columns=columns,
        warnings=tuple(warnings),
        rows=len(lines) - 1,
    )


# --------------------------------------------------------------------------- SEG


def files_sha256(files: Mapping[str, bytes]) -> str:
    text = "".join(f"{name}\t{hashlib.sha256(files[name]).hexdigest()}\n" for name in sorted(files))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _seg_problem(name: str, code: str, message: str, **params: Any) -> Problem:
    return Problem(None, code, f"{name}: {message}", {"file": name, **params})


def _segment_probability(item) -> float | None:
    """A `probability=0.83` (or `p=0.83`, `prob: 0.83`) in the segment's
    description, tracking id or label, in that order; None if none says."""
    for kw in ("SegmentDescription", "TrackingID", "SegmentLabel"):
        text = str(getattr(item, kw, "") or "")
        found = _PROBABILITY.search(text.lower())
        if found:
            v = float(found.group(1))
            if 0.0 <= v <= 1.0:
                return v
    return None


def _frame_item(ds, i: int, name: str):
    """A functional group of frame i: per-frame first, then shared."""
    per = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if per is not None and i < len(per) and name in per[i]:
        return per[i][name][0] if len(per[i][name].value) else None
    shared = getattr(ds, "SharedFunctionalGroupsSequence", None)
    if shared and name in shared[0]:
        return shared[0][name][0] if len(shared[0][name].value) else None
    return None


def _referenced_series(ds) -> list[str]:
    uids = [str(item.SeriesInstanceUID) for item in getattr(ds, "ReferencedSeriesSequence", [])]
    for study in getattr(ds, "StudiesContainingOtherReferencedInstancesSequence", []):
        uids += [str(s.SeriesInstanceUID) for s in getattr(study, "ReferencedSeriesSequence", [])]
    return list(dict.fromkeys(uids))


def _read_seg(name: str, blob: bytes, truth, problems: list[Problem]) -> list[SegLesion]:
    import pydicom
    from scipy import ndimage

    try:
        ds = pydicom.dcmread(io.BytesIO(blob))
        sop_class = str(ds.SOPClassUID)
    except Exception as err:  # noqa: BLE001 - any unreadable file is "not a SEG"
        problems.append(_seg_problem(name, "not_seg", f"not a DICOM file ({err})", reason=str(err)))
        return []
    if sop_class not in SEG_SOP_CLASSES:
        problems.append(
            _seg_problem(
                name,
                "not_seg",
                f"SOP class {sop_class} is not Segmentation Storage",
                reason="sop_class",
                sop_class_uid=sop_class,
            )
        )
        return []
    try:
        import highdicom as hd

        seg = hd.seg.Segmentation.from_dataset(ds, copy=False)
        pixels = np.asarray(seg.pixel_array)
    except Exception as err:  # noqa: BLE001 - a broken SEG is "not a SEG" too
        problems.append(_seg_problem(name, "not_seg", f"unreadable SEG ({err})", reason=str(err)))
        return []
    refs = _referenced_series(seg)
    scans = [truth.scan(u) for u in refs if truth.scan(u) is not None]
    if not scans:
        problems.append(
            _seg_problem(
                name,
                "seg_wrong_series",
                f"references series {', '.join(refs) or '(none)'}, not a scan of this evaluation",
                series_uids=refs,
            )
        )
        return []
    scan = scans[0]
    grid = scan.grid
    n_slices, rows, cols = scan.shape
    frames = int(getattr(seg, "NumberOfFrames", 1) or 1)
    if pixels.ndim == 2:
        pixels = pixels[None]
    before = len(problems)
    if (int(seg.Rows), int(seg.Columns)) != (rows, cols):
        problems.append(
            _seg_problem(
                name,
                "seg_geometry",
                f"frames are {seg.Rows}x{seg.Columns}, series {scan.series_uid} is {rows}x{cols}",
                series_uid=scan.series_uid,
                reason="matrix",
                found=[int(seg.Rows), int(seg.Columns)],
                expected=[rows, cols],
            )
        )
        return []
    cosines = np.asarray((*grid.row_cosine, *grid.column_cosine), dtype=float)
    spacing = np.asarray(grid.pixel_spacing, dtype=float)
    seg_type = str(getattr(seg, "SegmentationType", "BINARY"))
    max_fraction = float(getattr(seg, "MaximumFractionalValue", 1) or 1)
    volumes: dict[int, np.ndarray] = {}
    for i in range(frames):
        orientation = _frame_item(seg, i, "PlaneOrientationSequence")
        position = _frame_item(seg, i, "PlanePositionSequence")
        measures = _frame_item(seg, i, "PixelMeasuresSequence")
        ident = _frame_item(seg, i, "SegmentIdentificationSequence")
        bad = None
        params: dict[str, Any] = {}
        if position is None or "ImagePositionPatient" not in position:
            bad = "no ImagePositionPatient"
            params = {"reason": "position"}
        elif orientation is not None and not np.allclose(
            np.asarray(orientation.ImageOrientationPatient, float), cosines, atol=COSINE_TOL
        ):
            bad = "orientation differs from the series"
            params = {
                "reason": "orientation",
                "found": [float(v) for v in orientation.ImageOrientationPatient],
            }
        elif (
            measures is not None
            and "PixelSpacing" in measures
            and not np.allclose(np.asarray(measures.PixelSpacing, float), spacing, rtol=SPACING_TOL)
        ):
            bad = "pixel spacing differs from the series"
            params = {"reason": "spacing", "found": [float(v) for v in measures.PixelSpacing]}
        if bad is None:
            ipp = [float(v) for v in position.ImagePositionPatient]  # type: ignore[union-attr]
            s, col, row = grid.to_index(*ipp)
            k = int(round(s))
            if (
                abs(s - k) > VOXEL_TOL
                or abs(col) > VOXEL_TOL
                or abs(row) > VOXEL_TOL
                or not 0 <= k < n_slices
            ):
                bad = "its position is not on a slice of the series"
                params = {
                    "reason": "position",
                    "position": ipp,
                    "index": [round(s, 3), round(row, 3), round(col, 3)],
                }
        if bad is not None:
            problems.append(
                _seg_problem(
                    name,
                    "seg_geometry",
                    f"frame {i + 1}: {bad}",
                    series_uid=scan.series_uid,
                    frame=i + 1,
                    **params,
                )
            )
            continue
        plane = pixels[i]
        if seg_type == "LABELMAP":
            numbers = [int(v) for v in np.unique(plane) if v]
            planes = {v: plane == v for v in numbers}
        else:
            number = int(ident.ReferencedSegmentNumber) if ident is not None else 1
            on = plane >= max_fraction / 2 if seg_type == "FRACTIONAL" else plane > 0
            planes = {number: on}
        for number, on in planes.items():
            vol = volumes.setdefault(number, np.zeros(scan.shape, dtype=bool))
            vol[k] |= on
    if len(problems) > before:
        return []
    described = {int(item.SegmentNumber): item for item in getattr(seg, "SegmentSequence", [])}
    structure = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity
    out = []
    for number in sorted(volumes):
        item = described.get(number)
        label = str(getattr(item, "SegmentLabel", "") or f"segment {number}")
        probability = _segment_probability(item) if item is not None else None
        labels, count = ndimage.label(volumes[number], structure=structure)
        for j, box in enumerate(ndimage.find_objects(labels), start=1):
            mask = SparseMask(tuple(int(b.start) for b in box), labels[box] == j)  # type: ignore[arg-type]
            out.append(
                SegLesion(
                    series_uid=scan.series_uid,
                    segment_number=number,
                    label=label if count == 1 else f"{label}/{j}",
                    mask=mask,
                    probability=probability,
                )
            )
    return out


def parse_segmentations(files: Mapping[str, bytes], truth) -> Parsed:
    problems: list[Problem] = []
    if not files:
        problems.append(Problem(None, "empty", "no SEG file was submitted", {}))
        raise SubmissionError(problems)
    lesions: list[SegLesion] = []
    for name in sorted(files):
        lesions += _read_seg(name, files[name], truth, problems)
    if problems:
        raise SubmissionError(problems)
    return Parsed(
        kind="segmentation",
        sha256=files_sha256(files),
        segments=tuple(lesions),
        rows=len(lesions),
    )


def _unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}


def _is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def sniff(data: bytes | Mapping[str, bytes]) -> str:
    """detection | classification | segmentation | dr_grading, from the bytes alone."""
    if isinstance(data, Mapping) or data[:4] == b"PK\x03\x04" or _is_dicom(data):
        return "segmentation"
    first = data.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace")
    names = {f.lower() for f in _fields(first)} if first.strip() else set()
    coords = names & {"coordx", "coordy", "coordz"}
    dr_values = set(DR_GRADE_COLUMNS) | set(DR_PROBABILITY_COLUMNS[:-1]) | {DR_DMO_COLUMN}
    if not coords and names & {"case_id", "seriesuid"} and names & dr_values:
        return "dr_grading"
    if "probability" in names and not coords and names & {"case_id", "seriesuid"}:
        return "classification"
    return "detection"


def parse_submission(data: bytes | Mapping[str, bytes], truth, kind: str | None = None) -> Parsed:
    kind = kind or sniff(data)
    if kind == "segmentation":
        if isinstance(data, Mapping):
            return parse_segmentations(data, truth)
        if data[:4] == b"PK\x03\x04":
            try:
                members = _unzip(data)
            except zipfile.BadZipFile as err:
                raise SubmissionError(
                    [Problem(None, "not_seg", f"not a readable zip ({err})", {"reason": str(err)})]
                ) from err
            parsed = parse_segmentations(members, truth)
        else:
            parsed = parse_segmentations({"submission.dcm": data}, truth)
        return replace(parsed, sha256=hashlib.sha256(data).hexdigest())
    if isinstance(data, Mapping):
        raise ValueError(f"a {kind} submission is one file, not a mapping")
    if kind == "detection":
        return parse_detections(data, truth)
    if kind == "classification":
        return parse_classification(data, truth)
    if kind == "dr_grading":
        return parse_dr_grading(data, truth)
    raise ValueError(f"unknown submission kind {kind!r}")
