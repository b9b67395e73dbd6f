"""Scoring an AI product against a frozen version, end to end: real de-identified
series read by three readers and settled, frozen; a manager uploads a product's
output on the version's evaluation page (a session login, as a browser does), the
job scores it, the report page shows the figures with their intervals, the rule
table and the strata, and the downloads carry the result, figures.csv, the
bilingual report and the result manifest. Malformed submissions come back with
every problem and its line number in the page's language, and nothing is kept;
the sequestered split needs its permission; readers and outsiders get 404; the
command writes every file; every evaluation is audited and read-only once done."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import jsonschema
import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase

from annotation_server.audit.models import AuditEvent
from annotation_server.datasets import evaluation_jobs, services
from annotation_server.datasets.models import Evaluation, FrozenError
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job

pytestmark = pytest.mark.django_db

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "qc" / "evaluation" / "result.schema.json").read_text()
)


@pytest.fixture
def frozen(cohort, project, manager, settings, tmp_path):
    """The twelve adjudicated cases of `cohort` (two sites, two vendors, nine of
    them with a nodule agreed by three readers), frozen with half in the
    sequestered test split."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    draft = services.create_draft(
        project,
        version="1.0.0",
        by=manager,
        all_adjudicated=True,
        seed=5,
        ratios={"train": 0.5, "validation": 0.0, "test": 0.5},
    )
    return services.freeze(draft, by=manager)


def detection_csv(version, split: str, *, hits: bool = True, false_positives: int = 2) -> bytes:
    """A product's LUNA16 CSV: a confident mark on every reference lesion of the
    split (when `hits`) and `false_positives` weak marks per scan away from them."""
    truth, _ = evaluation_jobs.truth_for(version, split)
    rows = ["seriesuid,coordX,coordY,coordZ,probability"]
    for lesion in truth.lesions:
        if hits and lesion.centre_mm and not lesion.excluded:
            x, y, z = lesion.centre_mm
            rows.append(f"{lesion.series_uid},{x:.3f},{y:.3f},{z:.3f},0.93")
    for scan in truth.scans:
        px, py, pz = scan.grid.positions[1]
        for k in range(false_positives):
            rows.append(f"{scan.series_uid},{px + 4 + 3 * k:.3f},{py + 4:.3f},{pz:.3f},0.{2 + k}")
    return ("\n".join(rows) + "\n").encode()


def _upload(client, version, data: bytes, *, name="product.csv", **form):
    url = f"/projects/{version.project.slug}/versions/{version.version}/evaluations/"
    headers = form.pop("headers", {})
    with TestCase.captureOnCommitCallbacks(execute=False):
        return client.post(
            url, {"submission": SimpleUploadedFile(name, data, "text/csv"), **form}, **headers
        )


def _evaluate(client, version, data: bytes, **form) -> Evaluation:
    response = _upload(client, version, data, **form)
    text = response.content.decode()
    assert response.status_code == 302, text[text.find("<main") :][:3000]
    evaluation = Evaluation.objects.latest("pk")
    assert response["Location"].endswith(f"/evaluations/{evaluation.pk}/")
    assert evaluation.status == "queued" and evaluation.job is not None
    assert jobs.execute(evaluation.job.pk) == Job.State.SUCCEEDED, evaluation.job.log
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", (evaluation.problems, evaluation.job.error)
    return evaluation


def _base(version) -> str:
    return f"/projects/{version.project.slug}/versions/{version.version}"


def test_manager_uploads_detections_and_reads_the_report(
    frozen, manager, session_client_for, tmp_path
):
    client = session_client_for(manager)
    page = client.get(f"{_base(frozen)}/")
    assert f"{_base(frozen)}/evaluations/" in page.content.decode()
    data = detection_csv(frozen, "train")
    evaluation = _evaluate(client, frozen, data, split="train", product="Acme CAD", threshold="0.5")
    result = evaluation.result
    jsonschema.validate(result, SCHEMA)
    assert result["product"] == "Acme CAD" and result["kind"] == "detection"
    assert result["dataset"]["split"] == "train" and result["submission"]["sha256"] == (
        evaluation.submission_sha256
    )
    # every reference lesion was hit with a confident mark: sensitivity 1 at the threshold
    assert result["figures"]["sensitivity"]["value"] == pytest.approx(1.0)
    assert result["figures"]["fp_per_scan"]["value"] == pytest.approx(0.0)
    assert 0.0 < result["figures"]["cpm"]["value"] <= 1.0
    declared = [r for r in result["rules"] if r["declared"]]
    assert len(declared) == 1 and declared[0]["rule"] == "centre_distance"
    assert len(result["rules"]) >= 3
    # the submission is stored content-addressed, byte for byte
    assert default_storage.open(evaluation.submission_key).read() == data
    assert evaluation.submission_bytes == len(data)

    report = client.get(f"{_base(frozen)}/evaluations/{evaluation.pk}/")
    text = report.content.decode()
    assert report.status_code == 200
    assert 'data-testid="evaluation-report"' in text
    assert "CPM" in text and f"{result['figures']['cpm']['value']:.3f}" in text
    assert text.count("data:image/png;base64,") >= 3  # FROC, rules, strata
    assert 'data-declared="1"' in text and 'data-stratum="site"' in text
    assert evaluation.submission_sha256 in text

    listing = client.get(f"{_base(frozen)}/evaluations/").content.decode()
    assert f'data-evaluation="{evaluation.pk}"' in listing

    downloads = {}
    for fmt in ("json", "csv", "html", "manifest"):
        response = client.get(f"{_base(frozen)}/evaluations/{evaluation.pk}/{fmt}/")
        assert response.status_code == 200, fmt
        assert response["Content-Disposition"].startswith("attachment")
        downloads[fmt] = response.content
    assert json.loads(downloads["json"]) == result
    rows = list(csv.DictReader(io.StringIO(downloads["csv"].decode("utf-8-sig"))))
    scopes = {r["scope"] for r in rows}
    assert {"overall", "rule", "stratum"} <= scopes
    cpm = next(r for r in rows if r["scope"] == "overall" and r["figure"] == "cpm")
    assert float(cpm["value"]) == pytest.approx(result["figures"]["cpm"]["value"])
    html = downloads["html"].decode()
    assert 'id="zh"' in html and 'id="en"' in html
    assert "Evaluation report" in html and "评估报告" in html
    assert html.count("data:image/png;base64,") >= 6  # each language's plots
    assert "http://" not in html.replace('xmlns="http://www.w3.org', "") and "<script" not in html
    manifest = json.loads(downloads["manifest"])
    assert manifest["submission_sha256"] == evaluation.submission_sha256
    assert manifest["kit_version"] == result["kit_version"]
    assert manifest["rule"] == "centre_distance" and "bootstrap" in manifest["conventions"]

    actions = list(
        AuditEvent.objects.filter(object_id=str(evaluation.pk)).values_list("action", flat=True)
    )
    assert "dataset.evaluation_requested" in actions and "dataset.evaluated" in actions


def test_malformed_csv_lists_every_problem_with_line_numbers_in_english_and_chinese(
    frozen, manager, session_client_for
):
    truth, _ = evaluation_jobs.truth_for(frozen, "train")
    uid = truth.scans[0].series_uid
    bad = (
        "seriesuid,coordX,coordY,coordZ,probability\n"
        f"{uid},1,2,abc,0.5\n"
        "1.2.3.4.5,0,0,0,0.5\n"
        f"{uid},0,0,0,1.7\n"
    ).encode()
    client = session_client_for(manager)
    english = _upload(client, frozen, bad, split="train", headers={"HTTP_ACCEPT_LANGUAGE": "en"})
    assert english.status_code == 400
    text = english.content.decode()
    assert 'data-testid="submission-problems"' in text
    for line, code in ((2, "not_a_number"), (3, "unknown_series"), (4, "probability_range")):
        assert f'data-code="{code}" data-line="{line}"' in text, code
    assert "is not a scan of this evaluation" in text and "outside [0, 1]" in text
    chinese = _upload(
        client, frozen, bad, split="train", headers={"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
    )
    zh = chinese.content.decode()
    assert chinese.status_code == 400
    assert 'data-code="unknown_series" data-line="3"' in zh
    assert "is not a scan of this evaluation" not in zh and "outside [0, 1]" not in zh
    assert "不是本次评估的" in zh
    assert not Evaluation.objects.exists()
    assert not default_storage.exists(evaluation_jobs.submission_key("0" * 64))
    assert AuditEvent.objects.filter(action="dataset.evaluation_rejected").count() == 2


def test_the_sequestered_split_needs_the_dedicated_permission(frozen, manager, session_client_for):
    client = session_client_for(manager)
    for split in ("test", ""):
        response = _upload(
            client, frozen, b"seriesuid,coordX,coordY,coordZ,probability\n", split=split
        )
        assert response.status_code == 404, split
    assert not Evaluation.objects.exists()
    form = client.get(f"{_base(frozen)}/evaluations/").content.decode()
    assert 'value="test"' not in form and 'value="train"' in form

    manager.user_permissions.add(Permission.objects.get(codename="view_sequestered"))
    client = session_client_for(manager)
    evaluation = _evaluate(client, frozen, detection_csv(frozen, "test"), split="test")
    assert evaluation.result["dataset"]["split"] == "test"
    assert evaluation.result["counts"]["scans"] == frozen.cases.filter(split="test").count()

    manager.user_permissions.clear()
    client = session_client_for(manager)
    base = f"{_base(frozen)}/evaluations/{evaluation.pk}"
    assert client.get(f"{base}/").status_code == 404
    assert client.get(f"{base}/json/").status_code == 404
    listing = client.get(f"{_base(frozen)}/evaluations/").content.decode()
    assert f'data-evaluation="{evaluation.pk}"' not in listing


def test_a_classification_product_over_the_whole_version_gets_its_roc_and_auc(
    frozen, manager, session_client_for
):
    manager.user_permissions.add(Permission.objects.get(codename="view_sequestered"))
    truth, _ = evaluation_jobs.truth_for(frozen, "")
    labels = {s.case_id: s.case_label for s in truth.scans}
    assert set(labels.values()) == {"positive", "negative"}
    rows = ["case_id,probability"] + [
        f"{case},{0.9 if label == 'positive' else 0.1}" for case, label in sorted(labels.items())
    ]
    client = session_client_for(manager)
    data = ("\n".join(rows) + "\n").encode()
    evaluation = _evaluate(client, frozen, data, split="", kind="")
    assert evaluation.kind == "classification" and evaluation.split == ""
    jsonschema.validate(evaluation.result, SCHEMA)
    assert evaluation.result["figures"]["auc"]["value"] == pytest.approx(1.0)
    page = client.get(f"{_base(frozen)}/evaluations/{evaluation.pk}/").content.decode()
    assert 'data-plot="roc"' in page and 'data-figure="auc"' in page


def test_readers_and_outsiders_get_404(
    frozen, manager, reader_a, outsider, session_client_for, client_for
):
    evaluation = _evaluate(
        session_client_for(manager), frozen, detection_csv(frozen, "train"), split="train"
    )
    base = f"{_base(frozen)}/evaluations"
    for user in (reader_a, outsider):
        client = session_client_for(user)
        assert client.get(f"{base}/").status_code == 404
        assert _upload(client, frozen, b"x", split="train").status_code == 404
        assert client.get(f"{base}/{evaluation.pk}/").status_code == 404
        assert client.get(f"{base}/{evaluation.pk}/html/").status_code == 404
        api = client_for(user)
        url = f"/api/v1/dataset-versions/{frozen.pk}/evaluations/"
        assert api.get(url).status_code == 404
        assert api.get(f"{url}{evaluation.pk}/").status_code == 404
    assert Evaluation.objects.count() == 1


def test_the_api_lists_creates_and_retrieves_evaluations(frozen, manager, client_for):
    api = client_for(manager)
    url = f"/api/v1/dataset-versions/{frozen.pk}/evaluations/"
    with TestCase.captureOnCommitCallbacks(execute=False):
        created = api.post(
            url,
            {
                "submission": SimpleUploadedFile("p.csv", detection_csv(frozen, "train")),
                "split": "train",
                "product": "API product",
            },
            format="multipart",
        )
    assert created.status_code == 202, created.content
    body = created.json()
    assert body["status"] == "queued" and body["result"] is None and body["kind"] == "detection"
    assert jobs.execute(body["job"]) == Job.State.SUCCEEDED
    one = api.get(f"{url}{body['id']}/").json()
    assert one["status"] == "succeeded" and one["result"]["product"] == "API product"
    jsonschema.validate(one["result"], SCHEMA)
    listed = api.get(url).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [r["id"] for r in rows] == [body["id"]]
    bad = api.post(
        url,
        {
            "submission": SimpleUploadedFile("p.csv", b"seriesuid,coordX,coordY,probability\n"),
            "split": "train",
        },
        format="multipart",
    )
    assert bad.status_code == 400
    problems = bad.json()["problems"]
    assert problems and problems[0]["line"] == 1 and problems[0]["code"] == "missing_columns"
    assert (
        api.post(
            url,
            {"submission": SimpleUploadedFile("p.csv", b"x"), "split": "test"},
            format="multipart",
        ).status_code
        == 404
    )
    assert Evaluation.objects.count() == 1


def test_a_finished_evaluation_is_read_only_and_kept(frozen, manager, session_client_for):
    evaluation = _evaluate(
        session_client_for(manager), frozen, detection_csv(frozen, "train"), split="train"
    )
    evaluation.product = "renamed"
    with pytest.raises(FrozenError):
        evaluation.save()
    with pytest.raises(FrozenError):
        evaluation.delete()
    # the job run again (a redelivered message) leaves it as it was
    again = Job.objects.create(
        kind=evaluation_jobs.JOB_KIND, params={"evaluation_id": evaluation.pk}
    )
    assert jobs.execute(again.pk) == Job.State.SUCCEEDED
    stored = Evaluation.objects.get(pk=evaluation.pk)
    assert stored.product == "" and stored.result == evaluation.result


def test_evaluate_command_writes_result_csv_report_and_manifest(frozen, project, tmp_path):
    export = Job.objects.create(
        kind="datasets.export",
        project=project,
        state=Job.State.SUCCEEDED,
        params={"version_id": frozen.pk, "format": "nifdc", "sequestered": True},
        result={"manifest_sha256": "f" * 64, "package": "lung_v1.0.0"},
    )
    submission = tmp_path / "product.csv"
    submission.write_bytes(detection_csv(frozen, "test", hits=False))
    other = tmp_path / "other.csv"
    other.write_bytes(detection_csv(frozen, "test"))
    out = io.StringIO()
    call_command(
        "evaluate",
        "--project",
        project.slug,
        "--version",
        "1.0.0",
        "--submission",
        str(submission),
        "--split",
        "test",
        "--product",
        "Misses everything",
        "--compare",
        str(other),
        "--bootstrap",
        "200",
        "--out",
        str(tmp_path / "out"),
        stdout=out,
    )
    folder = tmp_path / "out"
    for name in ("result.json", "figures.csv", "report.html", "manifest.json"):
        assert (folder / name).is_file(), name
    result = json.loads((folder / "result.json").read_text())
    jsonschema.validate(result, SCHEMA)
    assert result["dataset"]["manifest_sha256"] == "f" * 64
    assert f"export job {export.pk}" in result["conventions"]["manifest_source"]
    assert result["figures"]["sensitivity"]["value"] == pytest.approx(0.0)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["manifest_sha256"] == "f" * 64
    assert manifest["submission_sha256"] == hashlib.sha256(submission.read_bytes()).hexdigest()
    assert manifest["conventions"]["bootstrap"]["resamples"] == 200
    rows = list(csv.DictReader(io.StringIO((folder / "figures.csv").read_text("utf-8-sig"))))
    assert {r["scope"] for r in rows} >= {"overall", "rule", "stratum"}
    comparison = json.loads((folder / "comparison.json").read_text())
    assert comparison["difference"]["metric"] == "cpm" and comparison["difference"]["value"] < 0
    html = (folder / "report.html").read_text()
    assert "评估报告" in html and "Evaluation report" in html and "data:image/png" in html
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "succeeded" and evaluation.created_by is None
    assert AuditEvent.objects.filter(action="dataset.evaluated", object_id=str(evaluation.pk))
    assert "cpm" in out.getvalue()

    bad = tmp_path / "bad.csv"
    bad.write_text("seriesuid,coordX,coordY,coordZ,probability\n9.9,1,2,3,0.5\n")
    with pytest.raises(CommandError, match="line 2"):
        call_command(
            "evaluate",
            "--project",
            project.slug,
            "--version",
            "1.0.0",
            "--submission",
            str(bad),
            "--out",
            str(tmp_path / "bad"),
        )
    assert Evaluation.objects.count() == 1
