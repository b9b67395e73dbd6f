"""Exporting a frozen version end to end: real de-identified series read by three
readers and settled, frozen, exported from the version page (a session login, as
a browser does) and by the command; the zip downloads, unpacks and verifies, and
it carries the readers' agreement under package pseudonyms. Outsiders and readers
get 404; the sequestered test split is in a package only for managers who hold
datasets.view_sequestered."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

import fixtures
from annotation_server.datasets import services
from annotation_server.imaging.services import index_datasets
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from export.verify import verify
from tests.datasets.conftest import make_case

pytestmark = pytest.mark.django_db


@pytest.fixture
def frozen(project, protocol, readers, manager, settings, tmp_path):
    settings.REFSET_EXPORT_DIR = tmp_path / "exports"
    cases = []
    for i in range(4):
        datasets, _ = fixtures.build_ct_datasets(slices=6, seed=300 + i, matrix=64)
        series = index_datasets(project, datasets).series[0]
        cases.append(
            make_case(
                project,
                readers,
                f"E{i:02d}",
                patient="",
                series=series,
                positive=i % 2 == 0,
                finding_at=(30, 30, [2, 3]),
            )
        )
    draft = services.create_draft(
        project,
        version="1.0.0",
        by=manager,
        all_adjudicated=True,
        seed=5,
        ratios={"train": 0.5, "validation": 0.0, "test": 0.5},
    )
    return services.freeze(draft, by=manager)


def _export(client, version, **form) -> Job:
    url = f"/projects/{version.project.slug}/versions/{version.version}/export/"
    with TestCase.captureOnCommitCallbacks(execute=False):
        response = client.post(url, {"format": "nifdc", **form})
    assert response.status_code == 302, response.content
    assert response["Location"].endswith(f"/versions/{version.version}/")
    job = Job.objects.filter(kind="datasets.export").latest("pk")
    assert jobs.execute(job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, (job.error, job.log)
    return job


def _download(client, version, job, tmp_path):
    page = client.get(f"/projects/{version.project.slug}/versions/{version.version}/")
    link = f"/projects/{version.project.slug}/versions/{version.version}/exports/{job.pk}/download/"
    assert link in page.content.decode()
    response = client.get(link)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")
    data = b"".join(response.streaming_content)
    target = tmp_path / f"unzipped-{job.pk}"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(target)
    (root,) = list(target.iterdir())
    return root


def _case_ids(root) -> list[str]:
    text = (root / "tables" / "cases.csv").read_text(encoding="utf-8-sig")
    return sorted(row["case_id"] for row in csv.DictReader(io.StringIO(text)))


def test_manager_exports_from_the_version_page_and_the_zip_verifies(
    frozen, manager, session_client_for, tmp_path
):
    client = session_client_for(manager)
    job = _export(client, frozen)
    assert job.result["sequestered"] is False and len(job.result["manifest_sha256"]) == 64
    root = _download(client, frozen, job, tmp_path)
    assert verify(root) == []
    visible = sorted(frozen.cases.exclude(split="test").values_list("case_code", flat=True))
    assert 0 < len(visible) < 4  # the test split is sequestered from this manager
    assert _case_ids(root) == visible
    stats = json.loads((root / "qc" / "agreement_stats.json").read_text())
    assert stats["counts"]["cases"] == len(visible)
    labels = {r["label"] for r in stats["readers"]}
    assert labels and all(label.startswith(("RD", "U")) for label in labels), labels
    blob = (root / "qc" / "agreement_stats.json").read_text()
    for name in ("reader_a", "reader_b", "reader_c", manager.username):
        assert name not in blob
    assert sorted(p.name for p in (root / "qc" / "plots").iterdir())
    assert (root / "annotations" / "dicom" / "SEG").is_dir()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["version"] == "1.0.0"


def test_the_sequestered_split_needs_the_dedicated_permission(
    frozen, manager, session_client_for, tmp_path
):
    manager.user_permissions.add(Permission.objects.get(codename="view_sequestered"))
    client = session_client_for(manager)
    job = _export(client, frozen)
    assert job.result["sequestered"] is True
    assert job.result["zip"].endswith("_sequestered.zip")
    root = _download(client, frozen, job, tmp_path)
    assert _case_ids(root) == ["E00", "E01", "E02", "E03"]
    assert verify(root) == []


def test_readers_and_outsiders_get_404(
    frozen, manager, reader_a, outsider, session_client_for, tmp_path
):
    job = _export(session_client_for(manager), frozen)
    base = f"/projects/{frozen.project.slug}/versions/{frozen.version}"
    for user in (reader_a, outsider):
        client = session_client_for(user)
        assert client.post(f"{base}/export/", {"format": "nifdc"}).status_code == 404
        assert client.get(f"{base}/exports/{job.pk}/download/").status_code == 404
    assert Job.objects.filter(kind="datasets.export").count() == 1


def test_a_draft_or_an_unknown_format_is_refused_with_the_reason(
    frozen, project, manager, session_client_for
):
    client = session_client_for(manager)
    url = f"/projects/{project.slug}/versions/{frozen.version}/export/"
    response = client.post(url, {"format": "tiff"})
    assert response.status_code == 400
    assert "tiff" in response.content.decode()
    assert not Job.objects.filter(kind="datasets.export").exists()


def test_export_dataset_and_verify_package_commands(frozen, project, tmp_path):
    out = io.StringIO()
    call_command(
        "export_dataset",
        "--project",
        project.slug,
        "--version",
        "1.0.0",
        "--out",
        str(tmp_path / "cli"),
        "--zip",
        "--include-sequestered",
        stdout=out,
    )
    root = tmp_path / "cli" / f"{project.slug}_v1.0.0"
    assert f"package: {root}" in out.getvalue()
    assert f"zip: {root.parent / (root.name + '.zip')}" in out.getvalue()
    assert zipfile.is_zipfile(root.parent / (root.name + ".zip"))
    assert _case_ids(root) == ["E00", "E01", "E02", "E03"]
    ok = io.StringIO()
    call_command("verify_package", str(root), stdout=ok)
    assert "every file matches" in ok.getvalue()
    luna = root / "annotations" / "luna16" / "annotations.csv"
    luna.write_text(luna.read_text() + "1.2.3,0,0,0,5\n")
    with pytest.raises(CommandError, match="annotations.csv"):
        call_command("verify_package", str(root), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="9.9.9"):
        call_command(
            "export_dataset", "--project", project.slug, "--version", "9.9.9", "--out", "x"
        )
