"""A re-imported photograph stores nothing new: the conversion is deterministic
(same photograph, same manifest row -> the same DICOM bytes, hence the same
content-addressed object), so a duplicate leaves no unreferenced file behind."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pydicom
import pytest
from django.conf import settings
from django.core.files.storage import default_storage

from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.imaging.models import Instance
from fixtures import fundus
from tests import factories

pytestmark = pytest.mark.django_db

DCIODVFY = "/usr/bin/dciodvfy"


def _stored_objects() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def _delivery(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["filename,patient_id,visit_id,laterality,camera"]
    for i, (lat, fmt) in enumerate((("OD", "jpeg"), ("OS", "png"))):
        rgb, truth = fundus.build_fundus(60 + i, laterality=lat, size=192, grade=1)
        name = f"eye{i}.{fundus.FORMATS[fmt].lstrip('.')}"
        (folder / name).write_bytes(fundus.encode_photo(rgb, truth, fmt))
        rows.append(f"{name},PAT-9,VISIT-9,{lat},Topcon TRC-NW400")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("workers", [1, 2], ids=["serial", "workers"])
def test_a_reimported_photo_stores_nothing_new(tmp_path, workers, monkeypatch):
    from annotation_server.imaging.ingest import parallel

    monkeypatch.setattr(parallel, "_other_threads", lambda: False)
    project = factories.ProjectFactory(slug="fundus-dup", modality="OP")
    _delivery(tmp_path / "a")
    first = ingest(project, from_paths([tmp_path / "a"], Limits()), source="test", workers=1)
    assert first.summary()["imported"] == 2
    stored = _stored_objects()
    instance_files = set(Instance.objects.values_list("file", flat=True))
    assert len(instance_files) == 2 and instance_files <= stored
    # the same photographs again (another folder, same manifest rows), later
    _delivery(tmp_path / "b")
    again = ingest(project, from_paths([tmp_path / "b"], Limits()), source="test", workers=workers)
    assert again.summary()["duplicates"] == 2 and again.summary()["imported"] == 0
    assert _stored_objects() == stored
    assert Instance.objects.count() == 2


def test_the_stored_times_are_fixed_and_the_object_still_verifies(tmp_path):
    project = factories.ProjectFactory(slug="fundus-times", modality="OP")
    _delivery(tmp_path / "a")
    ingest(project, from_paths([tmp_path / "a"], Limits()), source="test", workers=1)
    instance = Instance.objects.order_by("pk").first()
    with default_storage.open(instance.file) as fh:
        data = fh.read()
    ds = pydicom.dcmread(io.BytesIO(data))
    assert "InstanceCreationDate" not in ds
    # the fixed value, shifted like any date of the patient (or kept as it is)
    assert len(ds.ContentDate) == 8 and ds.AcquisitionDateTime.startswith(ds.ContentDate)
    assert ds.ContentDate.startswith(("18", "19"))
    path = tmp_path / "stored.dcm"
    path.write_bytes(data)
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    report = proc.stdout + proc.stderr
    assert "OphthalmicPhotography8BitImage" in report
    assert [ln for ln in report.splitlines() if ln.lstrip().startswith("Error")] == [], report
