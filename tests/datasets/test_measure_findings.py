"""Findings saved before measurements existed: `manage.py measure_findings`
measures them once (idempotent, with progress), leaves frozen ones alone, and a
version frozen afterwards exports the measurements of reads and reference."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from annotation_server.datasets import services
from annotation_server.datasets.package_input import build_package_input, measured
from annotation_server.reading.measurements import measure_finding
from annotation_server.reading.models import Finding
from tests import factories
from tests.datasets.conftest import make_case

pytestmark = pytest.mark.django_db

DIAMETER_MM = 12 * 0.7  # tests/adjudication/conftest.py ellipse: radius 6 px, 0.7 mm pixels


def _run(*args) -> str:
    out = StringIO()
    call_command("measure_findings", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def cases(project, protocol, readers, site):
    return [
        make_case(project, readers, f"M{i:03d}", patient=f"P{i:03d}", site=site) for i in range(2)
    ]


def test_the_command_measures_old_findings_once_and_keeps_their_version(cases, project):
    findings = Finding.objects.filter(task__case__project=project)
    assert findings.count() == 6 and not findings.exclude(measurements=None).exists()
    before = {f.pk: (f.version, f.updated_at) for f in findings}

    out = _run("--project", project.slug)

    assert "6/6 findings" in out and "6 measured" in out
    for f in Finding.objects.filter(task__case__project=project):
        m = f.measurements
        assert m["units"]["length"] == "mm" and m["axes_from"] == "contour"
        assert m["long_axis"] == pytest.approx(DIAMETER_MM, abs=0.05)
        assert (f.version, f.updated_at) == before[f.pk]  # measuring is not an edit
    again = _run()
    assert "0 measured" in again


def test_points_stay_unmeasured_and_another_project_is_not_touched(cases, project, reader_a):
    other = factories.ProjectFactory()
    stranger = make_case(other, [reader_a], "X001", patient="Q001", settle=False)
    task = factories.TaskFactory(case=cases[0], reader=factories.UserFactory())
    point = Finding.objects.create(
        task=task,
        finding_type="nodule",
        geometry={"kind": "point", "shapes": [{"slice_index": 5, "points": [[100, 100]]}]},
    )

    out = _run("--project", project.slug)

    assert "6 measured" in out
    point.refresh_from_db()
    assert point.measurements is None
    assert not Finding.objects.filter(task__case=stranger).exclude(measurements=None).exists()
    with pytest.raises(CommandError):
        _run("--project", "no-such-project")


def test_frozen_findings_are_left_alone_and_counted(cases, project, manager):
    services.freeze(
        services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True),
        by=manager,
    )
    out = _run()
    assert "0 measured" in out and "6 left alone in frozen versions" in out
    assert not Finding.objects.exclude(measurements=None).exists()


def test_a_version_frozen_after_measuring_exports_reads_and_reference_measurements(
    cases, project, manager
):
    _run()
    version = services.freeze(
        services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True),
        by=manager,
    )
    snap = version.cases.get(case_code="M000").snapshot
    assert all(f["measurements"]["long_axis"] for r in snap["reads"] for f in r["findings"])
    inp = build_package_input(version)
    findings = [f for r in inp.reads for f in r.findings]
    assert len(findings) == 6
    assert {f.axes_from for f in findings} == {"contour"}
    assert all(f.long_axis_mm == pytest.approx(DIAMETER_MM, abs=0.05) for f in findings)
    assert len(inp.reference) == 2
    series = cases[0].series
    for ref in inp.reference:  # the consensus outline's own measurements, not a reader's
        expected = measure_finding(series, ref.geometry)
        assert ref.long_axis_mm == expected["long_axis"] > DIAMETER_MM
        assert ref.short_axis_mm == expected["short_axis"]
        assert ref.axes_from == "contour"


def test_measured_keeps_only_values_in_the_unit_of_their_column():
    in_px = {
        "long_axis": 12.0,
        "short_axis": 10.0,
        "mean_diameter": 11.0,
        "volume": None,
        "axes_from": "contour",
        "units": {"length": "px", "area": "px²", "volume": None},
    }
    assert measured(in_px) == {
        "long_axis_mm": None,
        "short_axis_mm": None,
        "mean_diameter_mm": None,
        "volume_mm3": None,
        "mean_hu": None,
        "max_hu": None,
        "axes_from": "",
    }
    ct = dict(in_px, units={"length": "mm", "volume": "mm³", "hu": "HU"}, volume=500.0)
    ct.update(hu_mean=-20.5, hu_max=60.0, axes_from="reader")
    assert measured(ct) == {
        "long_axis_mm": 12.0,
        "short_axis_mm": 10.0,
        "mean_diameter_mm": 11.0,
        "volume_mm3": 500.0,
        "mean_hu": -20.5,
        "max_hu": 60.0,
        "axes_from": "reader",
    }
    # saved before measurements existed: the axes the reader typed, said so
    typed = measured(None, {"long_axis_mm": 7, "short_axis_mm": 5, "malignancy": 3})
    assert (typed["long_axis_mm"], typed["mean_diameter_mm"], typed["axes_from"]) == (
        7.0,
        6.0,
        "attribute",
    )
    assert measured(None, {"long_axis_mm": True})["long_axis_mm"] is None


def test_a_freeze_copies_the_reference_measurements_kept_with_each_revision(
    cases, project, manager
):
    from annotation_server.adjudication.models import ReferenceFinding

    refs = ReferenceFinding.objects.filter(case__project=project, is_current=True)
    assert refs.count() == 2 and all(r.measurements["long_axis"] for r in refs)
    kept = refs.first()
    # a stored value the pixels would not give: the snapshot must take it as stored
    ReferenceFinding.objects.filter(pk=kept.pk).update(
        measurements=dict(kept.measurements, long_axis=99.0)
    )
    older = refs.exclude(pk=kept.pk).get()
    ReferenceFinding.objects.filter(pk=older.pk).update(measurements=None)  # before the field

    version = services.freeze(
        services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True),
        by=manager,
    )
    frozen = {
        f["ref_key"]: f["measurements"]
        for dc in version.cases.all()
        for f in dc.snapshot["reference"]["findings"]
        if f["current"]
    }
    assert frozen[str(kept.ref_key)]["long_axis"] == 99.0
    assert frozen[str(older.ref_key)] == measure_finding(older.case.series, older.geometry)
