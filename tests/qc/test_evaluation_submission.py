"""Parsing and checking a product's submission: the malformed-submission suite.

Detection and classification files are checked against a small hand-made
Truth (20x20 voxels of 1 mm, 10 slices 2 mm apart from z=0); SEG files against
synthetic CT written by tests/export/builders.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest

from qc.evaluation.submission import (
    SubmissionError,
    files_sha256,
    parse_classification,
    parse_detections,
    parse_segmentations,
    parse_submission,
    sniff,
    voxel_indices,
)
from qc.evaluation.truth import Scan, Truth
from qc.matching import Grid
from tests.qc import evaluation_seg_fixtures as fx

HEADER = "seriesuid,coordX,coordY,coordZ,probability\n"


def _scan(uid: str, case: str) -> Scan:
    grid = Grid.regular(10, spacing=(2.0, 1.0, 1.0), rows=20, columns=20)
    return Scan(series_uid=uid, case_id=case, patient_id="P" + case, grid=grid)


@pytest.fixture
def truth() -> Truth:
    scans = (_scan("1.1", "C1"), _scan("1.2", "C1"), _scan("2.1", "C2"), _scan("3.1", "C3"))
    return Truth("ds", "1.0.0", "test", "centre_distance", 5.0, 3, scans, ())


def _problems(fn, data: bytes, truth) -> list[tuple[int | None, str]]:
    with pytest.raises(SubmissionError) as err:
        fn(data, truth)
    return [(p.line, p.code) for p in err.value.problems], err.value.problems


def _csv(text: str) -> bytes:
    return text.encode("utf-8")


# ----------------------------------------------------------------- valid files


def test_detection_with_bom_any_column_order_and_case_of_names(truth):
    data = b"\xef\xbb\xbf" + _csv(
        " Probability ,coordZ,coordY,coordX,SERIESUID\r\n0.9,4,5.5,3,1.1\r\n\r\n0.2,0,0,0,2.1\r\n"
    )
    parsed = parse_detections(data, truth)
    assert parsed.kind == "detection"
    assert [(d.series_uid, d.x, d.y, d.z, d.probability, d.line) for d in parsed.detections] == [
        ("1.1", 3.0, 5.5, 4.0, 0.9, 2),
        ("2.1", 0.0, 0.0, 0.0, 0.2, 4),
    ]
    assert parsed.rows == 2 and parsed.warnings == ()
    assert parsed.sha256 == hashlib.sha256(data).hexdigest()


def test_header_without_rows_is_a_product_that_marked_nothing(truth):
    parsed = parse_detections(_csv(HEADER), truth)
    assert parsed.detections == () and parsed.rows == 0


def test_classification_by_case_and_by_series(truth):
    by_case = parse_classification(_csv("case_id,probability\nC1,0.7\nC2,0\nC3,1\n"), truth)
    assert [(s.case_id, s.probability, s.line) for s in by_case.scores] == [
        ("C1", 0.7, 2),
        ("C2", 0.0, 3),
        ("C3", 1.0, 4),
    ]
    # Two series of one case with the same score are one score (the first line's).
    by_series = parse_classification(
        _csv("seriesuid,probability\n1.1,0.4\n2.1,0.5\n1.2,0.4\n3.1,0.6\n"), truth
    )
    assert [(s.case_id, s.probability, s.line) for s in by_series.scores] == [
        ("C1", 0.4, 2),
        ("C2", 0.5, 3),
        ("C3", 0.6, 5),
    ]


# ------------------------------------------------------ one test per problem code


def test_missing_columns_in_header_and_in_a_row(truth):
    found, problems = _problems(
        parse_detections, _csv("seriesuid,coordX,coordY,probability\n1.1,1,1,0.5\n"), truth
    )
    assert found == [(1, "missing_columns")]
    assert problems[0].params["missing"] == ["coordz"]
    found, problems = _problems(
        parse_detections, _csv(HEADER + "1.1,1,1,0.5\n1.1,2,2,2,0.5\n"), truth
    )
    assert found == [(2, "missing_columns")]
    assert problems[0].params == {"line": 2, "expected": 5, "found": 4}


def test_extra_columns_in_header_and_in_a_row(truth):
    found, problems = _problems(
        parse_detections,
        _csv("seriesuid,coordX,coordY,coordZ,probability,note\n1.1,1,1,1,0.5,x\n1.1,1,1,1,0.5\n"),
        truth,
    )
    # The extra header column is reported, and rows are still checked against it.
    assert found == [(1, "extra_columns"), (3, "missing_columns")]
    assert problems[0].params["extra"] == ["note"]
    found, _ = _problems(parse_detections, _csv(HEADER + "1.1,1,1,1,0.5,9\n"), truth)
    assert found == [(2, "extra_columns")]
    found, _ = _problems(
        parse_classification, _csv("case_id,seriesuid,probability\nC1,1.1,0.5\n"), truth
    )
    assert (1, "extra_columns") in found


def test_unknown_series(truth):
    found, problems = _problems(
        parse_detections, _csv(HEADER + "1.1,1,1,1,0.5\n9.9,1,1,1,0.5\n"), truth
    )
    assert found == [(3, "unknown_series")]
    assert problems[0].params == {"line": 3, "column": "seriesuid", "value": "9.9"}
    found, _ = _problems(
        parse_classification,
        _csv("seriesuid,probability\n1.1,0.5\n2.1,0.5\n3.1,0.5\n7.7,0.1\n"),
        truth,
    )
    assert found == [(5, "unknown_series")]


def test_unknown_case(truth):
    found, problems = _problems(
        parse_classification, _csv("case_id,probability\nC1,0.5\nC2,0.5\nC9,0.5\nC3,0.5\n"), truth
    )
    assert found == [(4, "unknown_case")]
    assert problems[0].params == {"line": 4, "column": "case_id", "value": "C9"}


def test_not_a_number(truth):
    found, problems = _problems(
        parse_detections, _csv(HEADER + "1.1,abc,1,1,0.5\n1.1,1,1,,0.5\n1.1,1,1,1,high\n"), truth
    )
    assert found == [(2, "not_a_number"), (3, "not_a_number"), (4, "not_a_number")]
    assert [p.params for p in problems] == [
        {"line": 2, "column": "coordx", "value": "abc"},
        {"line": 3, "column": "coordz", "value": ""},
        {"line": 4, "column": "probability", "value": "high"},
    ]


def test_nan_and_infinity(truth):
    found, problems = _problems(
        parse_detections, _csv(HEADER + "1.1,nan,1,1,0.5\n1.1,1,1,1,NaN\n1.1,1,-inf,1,0.5\n"), truth
    )
    assert found == [(2, "nan"), (3, "nan"), (4, "nan")]
    assert problems[2].params == {"line": 4, "column": "coordy", "value": "-inf"}


def test_probability_outside_unit_interval(truth):
    found, problems = _problems(
        parse_detections,
        _csv(HEADER + "1.1,1,1,1,1\n1.1,2,1,1,1.0001\n1.1,3,1,1,-0.1\n1.1,4,1,1,0\n"),
        truth,
    )
    assert found == [(3, "probability_range"), (4, "probability_range")]
    assert problems[0].params["value"] == "1.0001"
    found, _ = _problems(
        parse_classification, _csv("case_id,probability\nC1,2\nC2,0.5\nC3,0.5\n"), truth
    )
    assert found == [(2, "probability_range")]


def test_duplicate_rows(truth):
    # Same series and coordinates (whatever the probability): a duplicate; another series is not.
    found, problems = _problems(
        parse_detections, _csv(HEADER + "1.1,1,1,1,0.5\n2.1,1,1,1,0.5\n1.1,1.0,1,1,0.9\n"), truth
    )
    assert found == [(4, "duplicate_row")]
    assert problems[0].params == {"line": 4, "first_line": 2, "series_uid": "1.1"}
    found, _ = _problems(
        parse_classification, _csv("case_id,probability\nC1,0.5\nC2,0.5\nC3,0.5\nC1,0.5\n"), truth
    )
    assert found == [(5, "duplicate_row")]
    # Two series of case C1 scored differently.
    found, problems = _problems(
        parse_classification,
        _csv("seriesuid,probability\n1.1,0.4\n2.1,0.5\n3.1,0.5\n1.2,0.6\n"),
        truth,
    )
    assert found == [(5, "duplicate_row")]
    assert problems[0].params == {
        "line": 5,
        "first_line": 2,
        "case_id": "C1",
        "series_uid": "1.2",
        "value": 0.6,
        "first_value": 0.4,
    }
    found, _ = _problems(
        parse_classification,
        _csv("seriesuid,probability\n1.1,0.4\n2.1,0.5\n3.1,0.5\n1.1,0.4\n"),
        truth,
    )
    assert found == [(5, "duplicate_row")]


def test_outside_volume_with_half_a_voxel_margin(truth):
    # x, y span voxel centres 0..19 mm, z 0..18 mm (10 slices, 2 mm): margin 0.5 voxel.
    inside = "1.1,-0.5,19.5,-1.0,0.5\n1.1,0,0,19,0.5\n"
    outside = "1.1,-0.6,1,1,0.5\n1.1,1,1,19.2,0.5\n"
    found, problems = _problems(parse_detections, _csv(HEADER + inside + outside), truth)
    assert found == [(4, "outside_volume"), (5, "outside_volume")]
    assert problems[0].params["series_uid"] == "1.1"
    assert problems[0].params["shape"] == [10, 20, 20]
    assert problems[1].params["index"] == [9.6, 1.0, 1.0]


def test_empty_file(truth):
    for data in (b"", b"\xef\xbb\xbf", b"\n  \n"):
        found, _ = _problems(parse_detections, data, truth)
        assert found == [(None, "empty")]
        found, _ = _problems(parse_classification, data, truth)
        assert found == [(None, "empty")]


def test_bad_encoding_reported_per_line_with_the_rest(truth):
    data = (
        _csv(HEADER + "1.1,1,1,1,0.5\n")
        + "1.1,2,2,2,0.5 é\n".encode("latin-1")
        + _csv("1.1,1,1,1,7\n")
    )
    found, problems = _problems(parse_detections, data, truth)
    assert found == [(3, "encoding"), (4, "probability_range")]
    assert problems[0].params == {"line": 3, "byte": 15, "encoding": "utf-8"}


def test_missing_cases(truth):
    found, problems = _problems(parse_classification, _csv("case_id,probability\nC2,0.5\n"), truth)
    assert found == [(None, "missing_cases")]
    assert problems[0].params == {"cases": ["C1", "C3"], "count": 2}
    found, _ = _problems(parse_classification, _csv("case_id,probability\n"), truth)
    assert found == [(None, "missing_cases")]


def test_too_many_marks_keeps_the_most_probable_with_ties_to_the_earlier_line(truth):
    rows = [
        f"1.1,{i % 20},{i // 20},0,{0.5 if i < 10 else 0.9 if i < 95 else 0.1}" for i in range(103)
    ]
    rows.append("2.1,1,1,1,0.3")
    parsed = parse_detections(_csv(HEADER + "\n".join(rows) + "\n"), truth)
    kept = [d.line for d in parsed.detections if d.series_uid == "1.1"]
    # 85 at 0.9 (lines 12..96), then 15 of the ten 0.5 marks (lines 2..11) and eight 0.1 ones:
    # all ten 0.5 marks, then 5 of the 0.1 marks: the earliest lines 97..101.
    assert kept == list(range(2, 102))
    assert [d.series_uid for d in parsed.detections].count("2.1") == 1
    assert [(w.line, w.code, w.params) for w in parsed.warnings] == [
        (None, "too_many_marks", {"series_uid": "1.1", "marks": 103, "kept": 100})
    ]
    assert parsed.rows == 104
    small = parse_detections(_csv(HEADER + "\n".join(rows) + "\n"), truth, max_per_scan=2)
    assert [d.line for d in small.detections if d.series_uid == "1.1"] == [12, 13]


def test_every_problem_of_a_file_is_reported_together(truth):
    data = _csv(
        "seriesuid,coordX,coordY,coordZ,probability,extra\n"  # 1 extra column
        "1.1,1,1,1,0.5,a\n"  # 2 fine
        "9.9,1,1,1,0.5,b\n"  # 3 unknown series
        "1.1,x,1,1,nan,c\n"  # 4 not a number and nan
        "\n"  # 5 blank (skipped, counted)
        "1.1,1,1,1,0.7,d\n"  # 6 duplicate of 2
        "2.1,500,1,1,1.5,e\n"  # 7 probability range (outside volume not checked without p)
        "2.1,500,1,1,0.5,f\n"  # 8 outside
        "1.1,1,1\n"  # 9 missing fields
    )
    found, problems = _problems(parse_detections, data, truth)
    assert found == [
        (1, "extra_columns"),
        (3, "unknown_series"),
        (4, "not_a_number"),
        (4, "nan"),
        (6, "duplicate_row"),
        (7, "probability_range"),
        (8, "outside_volume"),
        (9, "missing_columns"),
    ]
    assert all(p.message and (p.line is None or p.params.get("line") == p.line) for p in problems)


def test_error_message_names_the_lines(truth):
    with pytest.raises(SubmissionError) as err:
        parse_detections(_csv(HEADER + "9.9,1,1,1,0.5\n"), truth)
    assert "line 2" in str(err.value) and "9.9" in str(err.value)


# ------------------------------------------------------------------ SEG problems


@pytest.fixture(scope="module")
def version(tmp_path_factory):
    return fx.version(tmp_path_factory.mktemp("seg-version"))


def _seg_problems(files, truth):
    with pytest.raises(SubmissionError) as err:
        parse_segmentations(files, truth)
    return err.value.problems


def test_not_seg(version):
    inp, truth = version
    series = inp.cases[0].series[0]
    ct = Path(series.instances[0].path).read_bytes()
    problems = _seg_problems({"a.dcm": b"seriesuid,probability\n", "b.dcm": ct}, truth)
    assert [(p.line, p.code, p.params["file"]) for p in problems] == [
        (None, "not_seg", "a.dcm"),
        (None, "not_seg", "b.dcm"),
    ]
    assert (
        problems[1].params["sop_class_uid"] == pydicom.dcmread(series.instances[0].path).SOPClassUID
    )


def test_seg_wrong_series(version):
    inp, truth = version
    series = inp.cases[0].series[0]
    ds = fx.seg_dataset(series, [fx.box((8, 64, 64), (3, 10, 10), (5, 14, 14))])
    ds.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.3.999"
    problems = _seg_problems({"x.dcm": fx.to_bytes(ds)}, truth)
    assert [(p.code, p.params["series_uids"]) for p in problems] == [
        ("seg_wrong_series", ["1.2.3.999"])
    ]


def test_seg_geometry_frames_off_the_slices_and_all_files_reported(version):
    inp, truth = version
    series = inp.cases[0].series[0]
    ds = fx.seg_dataset(series, [fx.box((8, 64, 64), (2, 10, 10), (5, 14, 14))])
    # Frame 2 half a pixel (0.35 mm) off in x; frame 3 between two slices.
    ds.PerFrameFunctionalGroupsSequence[1].PlanePositionSequence[0].ImagePositionPatient[0] += 0.35
    ds.PerFrameFunctionalGroupsSequence[2].PlanePositionSequence[0].ImagePositionPatient[2] += 0.6
    bad_spacing = fx.seg_dataset(series, [fx.box((8, 64, 64), (2, 10, 10), (3, 14, 14))])
    bad_spacing.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [0.8, 0.8]
    problems = _seg_problems(
        {"a.dcm": fx.to_bytes(ds), "b.dcm": fx.to_bytes(bad_spacing), "c.dcm": b"junk"}, truth
    )
    got = [
        (p.code, p.params["file"], p.params.get("frame"), p.params.get("reason")) for p in problems
    ]
    assert got == [
        ("seg_geometry", "a.dcm", 2, "position"),
        ("seg_geometry", "a.dcm", 3, "position"),
        ("seg_geometry", "b.dcm", 1, "spacing"),
        ("not_seg", "c.dcm", None, problems[3].params["reason"]),
    ]
    assert problems[0].params["index"][2] == pytest.approx(0.5, abs=1e-6)


# ----------------------------------------------------------- sniffing and hashes


def test_sniff_and_dispatch(version, truth):
    inp, seg_truth = version
    series = inp.cases[0].series[0]
    seg = fx.seg_bytes(series, [fx.box((8, 64, 64), (3, 10, 10), (5, 14, 14))])
    assert sniff(_csv(HEADER)) == "detection"
    assert sniff(b"\xef\xbb\xbfcase_id,probability\n") == "classification"
    assert sniff(_csv("SeriesUID,Probability\n")) == "classification"
    assert sniff(seg) == sniff(fx.zipped({"a.dcm": seg})) == sniff({"a.dcm": seg}) == "segmentation"
    one = parse_submission(seg, seg_truth)
    assert one.kind == "segmentation" and one.sha256 == hashlib.sha256(seg).hexdigest()
    archive = fx.zipped({"dir/a.dcm": seg})
    zipped = parse_submission(archive, seg_truth)
    assert zipped.sha256 == hashlib.sha256(archive).hexdigest()
    assert [s.mask.voxels for s in zipped.segments] == [s.mask.voxels for s in one.segments] == [32]
    assert (
        parse_submission(_csv("case_id,probability\nC1,1\nC2,0\nC3,0\n"), truth).kind
        == "classification"
    )


def test_files_sha256_is_over_sorted_names_and_their_hashes():
    files = {"b.dcm": b"two", "a.dcm": b"one"}
    text = "".join(f"{n}\t{hashlib.sha256(files[n]).hexdigest()}\n" for n in ("a.dcm", "b.dcm"))
    assert files_sha256(files) == hashlib.sha256(text.encode()).hexdigest()
    assert files_sha256(files) != files_sha256({"a.dcm": b"two", "b.dcm": b"one"})


def test_segments_become_connected_components_with_probability(version):
    inp, truth = version
    series = inp.cases[1].series[0]
    shape = (8, 64, 64)
    one = fx.box(shape, (2, 10, 10), (3, 12, 12)) | fx.box(
        shape, (3, 12, 12), (4, 13, 13)
    )  # corner-touching: one (26-conn.)
    two = fx.box(shape, (2, 30, 30), (4, 33, 33)) | fx.box(shape, (2, 40, 40), (3, 41, 41))
    data = fx.seg_bytes(
        series, [one, two], labels={1: "a", 2: "b"}, descriptions={2: "nodule, probability=0.83"}
    )
    parsed = parse_segmentations({"p.dcm": data}, truth)
    got = [
        (s.series_uid, s.segment_number, s.label, s.mask.origin, s.mask.voxels, s.probability)
        for s in parsed.segments
    ]
    assert got == [
        (series.series_uid, 1, "a", (2, 10, 10), 5, None),
        (series.series_uid, 2, "b/1", (2, 30, 30), 18, 0.83),
        (series.series_uid, 2, "b/2", (2, 40, 40), 1, 0.83),
    ]
    dense = np.zeros(shape, bool)
    s = parsed.segments[0]
    dense[tuple(slice(o, o + n) for o, n in zip(s.mask.origin, s.mask.data.shape, strict=True))] = (
        s.mask.data
    )
    assert np.array_equal(dense, one)


@pytest.mark.parametrize("slices", [1, 2, 9])
def test_vectorised_indices_and_containment_match_the_scan(slices):
    rng = np.random.default_rng(slices)
    # A tilted, irregularly spaced, non-square grid stored head-first.
    angle = 0.3
    rc = (np.cos(angle), np.sin(angle), 0.0)
    cc = (0.0, np.cos(0.2), -np.sin(0.2))
    normal = np.cross(rc, cc)
    steps = np.cumsum(rng.uniform(0.8, 1.6, slices)) * -1
    positions = tuple(tuple(float(v) for v in 5 + normal * z) for z in steps)
    grid = Grid(positions, rc, cc, (0.8, 0.6), rows=12, columns=15)
    scan = Scan("9.9", "C9", "P9", grid)
    points = rng.uniform(-15, 20, size=(400, 3))
    idx = voxel_indices(grid, points)
    expected = np.array([grid.to_index(*p) for p in points])
    assert np.allclose(idx, expected, atol=1e-9)
    truth = Truth("ds", "1", "", "centre_distance", 5.0, 3, (scan,), ())
    rows = "".join(f"9.9,{x},{y},{z},0.5\n" for x, y, z in points)
    inside = [scan.contains_mm(*p) for p in points]
    assert 0 < sum(inside) < len(inside)
    try:
        parsed_lines = [d.line for d in parse_detections(_csv(HEADER + rows), truth).detections]
        flagged = []
    except SubmissionError as err:
        flagged = [p.line for p in err.problems if p.code == "outside_volume"]
        parsed_lines = []
    assert flagged == [i + 2 for i, ok in enumerate(inside) if not ok]
    assert not parsed_lines


def test_labelmap_and_fractional_segs(version):
    inp, truth = version
    series = inp.cases[0].series[0]
    shape = (8, 64, 64)
    a = fx.box(shape, (2, 10, 10), (4, 13, 13))  # 18 voxels
    b = fx.box(shape, (3, 30, 30), (4, 32, 32))  # 4 voxels
    labelmap = fx.seg_of_type(series, (a * 1 + b * 2).astype(np.uint8), "LABELMAP", 2)
    got = parse_segmentations({"l.dcm": labelmap}, truth).segments
    assert [(s.segment_number, s.label, s.mask.origin, s.mask.voxels) for s in got] == [
        (1, "s1", (2, 10, 10), 18),
        (2, "s2", (3, 30, 30), 4),
    ]
    # FRACTIONAL: a voxel belongs to a segment at half the maximum fraction or more.
    fractions = np.stack([a * 0.8, b * 0.3], axis=-1).astype(np.float32)
    got = parse_segmentations({"f.dcm": fx.seg_of_type(series, fractions, "FRACTIONAL", 2)}, truth)
    assert [(s.segment_number, s.mask.voxels) for s in got.segments] == [(1, 18)]
