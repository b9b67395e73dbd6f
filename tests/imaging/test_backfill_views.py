"""The view position recorded at import (Instance.view_position), the series
panel reading it from the rows, and `manage.py backfill_instance_views` filling
it for images imported before it was recorded."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.db import DatabaseError, transaction
from django.test import Client
from PIL import Image

import fixtures
from annotation_server.datasets.models import DatasetVersion, FrozenRow
from annotation_server.imaging import backfill, storage, study_series
from annotation_server.imaging.backfill import backfill_views
from annotation_server.imaging.models import Instance
from annotation_server.imaging.photo.convert import photo_to_dicom
from annotation_server.imaging.services import index_datasets
from annotation_server.projects.models import Case
from annotation_server.reading.models import ReadingTask
from tests import factories

pytestmark = pytest.mark.django_db


def radiograph(seed: int, laterality: str = "L"):
    ds, _truth = fixtures.build_xr_dataset(seed=seed, size=256)
    ds.ImageLaterality = laterality
    return ds


def photograph():
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    rgb[16:48, 16:48] = (180, 60, 20)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return photo_to_dicom(
        buffer.getvalue(),
        laterality="OD",
        patient_id="RS-P-0009",
        study_id="RS-V-0009",
        study_uid="2.25.9001",
        series_uid="2.25.9002",
        sop_uid="2.25.9003",
    )


def forget(rows) -> None:
    """Make rows look imported before the view position was recorded."""
    rows.update(view_position=None, laterality="", source_format="")


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("backfill_instance_views", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_the_import_records_the_view_position_and_laterality(project):
    xr = index_datasets(project, [radiograph(1, "R")]).series[0]
    row = Instance.objects.get(series=xr)
    assert (row.view_position, row.laterality, row.source_format) == ("PA", "R", "DICOM")
    ct_datasets, _ = fixtures.build_ct_datasets(slices=3, seed=5, matrix=32)
    ct = index_datasets(project, ct_datasets).series[0]
    # a CT slice's header names no view: recorded as "", not left unset
    assert set(Instance.objects.filter(series=ct).values_list("view_position", flat=True)) == {""}


def test_the_series_panel_takes_the_view_from_the_row_not_the_header(project, reader_a):
    xr = index_datasets(project, [radiograph(2, "L")]).series[0]
    case = Case.objects.create(
        project=project, code="X1", series=xr, state="reading", qc_status="pass"
    )
    ReadingTask.objects.create(case=case, reader=reader_a)
    client = Client()
    assert client.login(username=reader_a.username, password=factories.PASSWORD)

    def listed() -> tuple[str, str]:
        cache.clear()
        response = client.get(f"/api/v1/cases/{case.pk}/series/")
        assert response.status_code == 200, response.content
        row = response.json()["series"][0]
        return row["view_position"], row["laterality"]

    assert listed() == ("PA", "L")
    # the row says AP while the header says PA: the row wins, the header is not read
    Instance.objects.filter(series=xr).update(view_position="AP")
    assert listed() == ("AP", "L")
    # unset (imported before it was recorded): the header is read
    Instance.objects.filter(series=xr).update(view_position=None)
    assert listed() == ("PA", "L")
    # laterality other than L or R is not shown, like the image's own markers
    Instance.objects.filter(series=xr).update(view_position="PA", laterality="B")
    assert listed() == ("PA", "")


def test_backfill_fills_what_the_import_would_have_recorded(project):
    xr = index_datasets(project, [radiograph(3, "R")]).series[0]
    ct_datasets, _ = fixtures.build_ct_datasets(slices=4, seed=6, matrix=32)
    ct = index_datasets(project, ct_datasets).series[0]
    forget(Instance.objects.all())

    out, err = run("--batch", "2")  # several batches
    assert err == ""
    assert "Examined 5, filled 5 (source format DICOM: 5), unreadable 0;" in out
    row = Instance.objects.get(series=xr)
    assert (row.view_position, row.laterality, row.source_format) == ("PA", "R", "DICOM")
    assert set(Instance.objects.filter(series=ct).values_list("view_position", flat=True)) == {""}
    assert not Instance.objects.filter(view_position__isnull=True).exists()

    out, _ = run()  # again: nothing is left to look at
    assert "Examined 0, filled 0" in out


def test_backfill_keeps_a_recorded_laterality_and_a_photograph_source_unknown(project):
    xr = index_datasets(project, [radiograph(4, "R")]).series[0]
    photo = index_datasets(project, [photograph()]).series[0]
    Instance.objects.filter(series=xr).update(view_position=None, laterality="L")
    forget(Instance.objects.filter(series=photo))

    report = backfill_views()
    assert (report.examined, report.filled, report.source_formats) == (2, 2, 0)
    row = Instance.objects.get(series=xr)
    assert (row.view_position, row.laterality) == ("PA", "L")  # the row's own kept
    shot = Instance.objects.get(series=photo)
    # an Ophthalmic Photography row may have been a JPEG/PNG/TIFF: its format stays unknown
    assert (shot.view_position, shot.laterality, shot.source_format) == ("", "R", "")


def test_an_unreadable_file_is_named_and_the_rest_are_filled(project):
    good = index_datasets(project, [radiograph(5, "L")]).series[0]
    gone = index_datasets(project, [radiograph(6, "R")]).series[0]
    forget(Instance.objects.all())
    lost = Instance.objects.get(series=gone)
    storage.local_path(lost.file).unlink()

    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 1
    assert Instance.objects.get(series=good).view_position == "PA"
    assert Instance.objects.get(series=gone).view_position is None  # tried again next run

    err = io.StringIO()
    with pytest.raises(SystemExit):
        call_command("backfill_instance_views", stdout=io.StringIO(), stderr=err)
    assert f"instance {lost.pk}: cannot read {lost.file}" in err.getvalue()


def test_not_a_dicom_file_is_unreadable(project):
    xr = index_datasets(project, [radiograph(7, "L")]).series[0]
    forget(Instance.objects.all())
    row = Instance.objects.get(series=xr)
    storage.local_path(row.file).write_bytes(b"%PDF-1.4 not an image at all" * 10)
    report = backfill_views()
    assert [pk for pk, _why in report.unreadable] == [row.pk]
    assert report.filled == 0


def test_dry_run_writes_nothing_and_project_limits_the_fill(project):
    xr = index_datasets(project, [radiograph(8, "L")]).series[0]
    other = factories.ProjectFactory(slug="eyes", name="Fundus")
    elsewhere = index_datasets(other, [radiograph(9, "R")]).series[0]
    forget(Instance.objects.all())

    out, _ = run("--dry-run")
    assert "Dry run, nothing written: examined 2, would fill 2" in out
    assert Instance.objects.filter(view_position__isnull=True).count() == 2

    out, _ = run("--project", "lung")
    assert "Examined 1, filled 1" in out
    assert Instance.objects.get(series=xr).view_position == "PA"
    assert Instance.objects.get(series=elsewhere).view_position is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--batch", "0"), "--batch must be a whole number of at least 1"),
        (("--batch", "many"), "--batch must be a whole number of at least 1"),
        (("--project", "nope"), "No project with slug 'nope'."),
    ],
)
def test_usage_errors_name_the_problem(project, args, message):
    with pytest.raises(CommandError, match=message) as raised:
        run(*args)
    assert raised.value.returncode == 2


def test_view_of_reads_no_header_for_a_recorded_row(project, monkeypatch):
    xr = index_datasets(project, [radiograph(10, "R")]).series[0]
    monkeypatch.setattr(study_series, "view_of_header", lambda instance: pytest.fail("header read"))
    middle = study_series.middle_instance(xr)
    assert study_series.view_of(middle) == {"view_position": "PA", "laterality": "R"}


def test_rows_of_a_frozen_version_are_left_as_they_are_and_counted(project, manager):
    kept = index_datasets(project, [radiograph(11, "L")]).series[0]
    loose = index_datasets(project, [radiograph(12, "R")]).series[0]
    forget(Instance.objects.all())
    frozen_row = Instance.objects.get(series=kept)
    version = DatasetVersion.objects.create(project=project, version="1.0.0", created_by=manager)
    FrozenRow.objects.create(
        dataset_version=version, table_name="imaging_instance", row_id=frozen_row.pk
    )
    # the premise: the database refuses any change to a frozen row
    with pytest.raises(DatabaseError), transaction.atomic():
        Instance.objects.filter(pk=frozen_row.pk).update(view_position="PA")

    out, err = run()
    assert err == ""
    assert "Examined 1, filled 1" in out
    assert "in frozen dataset versions, left as they are: 1." in out
    assert Instance.objects.get(series=loose).view_position == "PA"
    assert Instance.objects.get(pk=frozen_row.pk).view_position is None
    # the series panel still names its view, from the header
    assert study_series.view_of(study_series.middle_instance(kept))["view_position"] == "PA"


def test_a_version_frozen_while_the_batch_is_read_leaves_its_rows_out(
    project, manager, monkeypatch
):
    kept = index_datasets(project, [radiograph(13, "L")]).series[0]
    loose = index_datasets(project, [radiograph(14, "R")]).series[0]
    forget(Instance.objects.all())
    frozen_row = Instance.objects.get(series=kept)
    asked = []
    real = backfill.read_only_ids

    def freeze_after_the_check(ids):
        ids = list(ids)
        asked.append(ids)
        if len(asked) == 1:  # the batch is checked: nothing frozen yet
            version = DatasetVersion.objects.create(
                project=project, version="1.0.0", created_by=manager
            )
            FrozenRow.objects.create(
                dataset_version=version, table_name="imaging_instance", row_id=frozen_row.pk
            )
            return set()
        return real(ids)

    monkeypatch.setattr(backfill, "read_only_ids", freeze_after_the_check)
    report = backfill_views(batch=10)
    assert len(asked) == 2  # the database refused the batch; it was asked again
    assert (report.examined, report.filled, report.frozen) == (1, 1, 1)
    assert report.source_formats == 1
    assert Instance.objects.get(series=loose).view_position == "PA"
    assert Instance.objects.get(pk=frozen_row.pk).view_position is None


def test_a_refusal_with_no_frozen_row_is_not_swallowed(project, monkeypatch):
    index_datasets(project, [radiograph(15, "L")])
    forget(Instance.objects.all())

    def refuse(*args, **kwargs):
        raise DatabaseError("disk full")

    monkeypatch.setattr(Instance.objects, "bulk_update", refuse)
    with pytest.raises(DatabaseError, match="disk full"):
        backfill_views()
