"""A DR grading product scored against a frozen fundus version, end to end:
six synthetic fundus photographs (three patients, both eyes) imported with a
manifest, graded by three readers on the shipped fundus-dr schema and settled,
frozen; a manager uploads the product's CSV on the version's evaluation page
through a session login, the job scores it, the report page shows the AUC and
the quadratic kappa, the confusion matrix with the ungradable row and the
skipped image; the downloads carry them; a malformed CSV comes back with every
problem on its line and column; a CT version refuses a DR submission."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pydicom
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import TestCase
from sklearn.metrics import cohen_kappa_score, roc_auc_score

from annotation_server.adjudication import services as adjudication
from annotation_server.datasets import evaluation_jobs, services
from annotation_server.datasets.models import Evaluation
from annotation_server.imaging.ingest.pipeline import ingest
from annotation_server.imaging.ingest.sources import Limits, from_paths
from annotation_server.jobs import services as jobs
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case
from fixtures import fundus
from tests import factories
from tests.adjudication.conftest import submit_all

pytestmark = pytest.mark.django_db

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "qc" / "evaluation" / "result.schema.json").read_text()
)
SIZE = 256
# patient seed -> {eye: (reference grade, DMO)}; patient 3's left eye is ungradable
REFERENCE = {
    1: {"OD": (0, "absent"), "OS": (1, "absent")},
    2: {"OD": (2, "absent"), "OS": (0, "absent")},
    3: {"OD": (3, "present"), "OS": ("ungradable", "ungradable")},
}
# the product: (grade, referable probability) per patient and eye; patient 3's
# left eye has no row (skipped)
PRODUCT = {
    1: {"OD": (0, 0.1), "OS": (2, 0.6)},
    2: {"OD": (2, 0.55), "OS": (0, 0.2)},
    3: {"OD": (4, 0.9)},
}


def _deliver(folder: Path) -> None:
    """Six photographs (three patients, one visit each, both eyes) and their manifest."""
    rows = ["filename,patient_id,visit_id,laterality"]
    for seed in REFERENCE:
        for eye in ("OD", "OS"):
            rgb, truth = fundus.build_fundus(seed, laterality=eye, size=SIZE, grade=1)
            truth["laterality"] = eye
            name = f"p{seed}_{eye}.png"
            (folder / name).write_bytes(fundus.encode_photo(rgb, truth, "png"))
            rows.append(f"{name},PAT-{seed},VISIT-{seed},{eye}")
    (folder / "manifest.csv").write_text("\n".join(rows) + "\n")


def _eye(case: Case) -> str:
    instance = case.series.instances.first()
    with default_storage.open(instance.file) as fh:
        side = pydicom.dcmread(fh, stop_before_pixels=True).ImageLaterality
    return {"R": "OD", "L": "OS"}[side]


@pytest.fixture
def fundus_version(project, manager, readers, settings, tmp_path):
    """The six photographs, each read by three readers who agree, settled and frozen
    (all in the train split); returns (version, {case code: (seed, eye)})."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    project.label_schema = factories.schema("fundus-dr")
    project.modality = "OP"
    project.save()
    protocol = project.protocol
    protocol.auto_accept_min_readers = 3
    protocol.save()
    delivery = tmp_path / "delivery"
    delivery.mkdir()
    _deliver(delivery)
    report = ingest(project, from_paths([delivery], Limits()), user=manager, source="test")
    assert report.summary()["imported"] == 6, [(f.name, f.reason) for f in report.files]
    # a patient's two eyes share a study (one visit); which study plays which
    # patient of REFERENCE does not matter, the eye is the object's laterality
    cases = list(Case.objects.filter(project=project).select_related("series__study"))
    by_study: dict[str, list[Case]] = {}
    for case in cases:
        by_study.setdefault(case.series.study.study_uid, []).append(case)
    assert sorted(len(v) for v in by_study.values()) == [2, 2, 2]
    layout = {}
    for seed, study in zip(sorted(REFERENCE), sorted(by_study), strict=True):
        for case in by_study[study]:
            layout[case.code] = (seed, _eye(case))
    assert sorted(layout.values()) == [(s, e) for s in sorted(REFERENCE) for e in ("OD", "OS")]
    for case in cases:
        Case.objects.filter(pk=case.pk).update(state="reading")
        seed, eye = layout[case.code]
        grade, dmo = REFERENCE[seed][eye]
        tasks = {
            f"r{i}": factories.TaskFactory(case=case, reader=reader)
            for i, reader in enumerate(readers)
        }
        submit_all(tasks, {n: {"dr_grade": grade, "dmo": dmo} for n in tasks})
        adjudication.settle_case(case.pk)
        case.refresh_from_db()
        assert case.state == Case.State.ADJUDICATED, case.state
    draft = services.create_draft(
        project,
        version="1.0.0",
        by=manager,
        all_adjudicated=True,
        seed=5,
        ratios={"train": 1.0, "validation": 0.0, "test": 0.0},
    )
    return services.freeze(draft, by=manager), layout


@pytest.fixture
def readers(reader_a, reader_b, reader_c):
    return [reader_a, reader_b, reader_c]


def product_csv(layout: dict, *, header="case_id,dr_grade,referable_probability,dmo") -> bytes:
    rows = [header]
    for code, (seed, eye) in sorted(layout.items()):
        if eye in PRODUCT[seed]:
            grade, p = PRODUCT[seed][eye]
            rows.append(f"{code},{grade},{p},absent")
    return ("\n".join(rows) + "\n").encode()


def _base(version) -> str:
    return f"/projects/{version.project.slug}/versions/{version.version}"


def _upload(client, version, data: bytes, **form):
    headers = form.pop("headers", {})
    with TestCase.captureOnCommitCallbacks(execute=False):
        return client.post(
            f"{_base(version)}/evaluations/",
            {"submission": SimpleUploadedFile("dr.csv", data, "text/csv"), **form},
            **headers,
        )


def test_manager_scores_a_dr_grading_product_and_reads_auc_and_kappa(
    fundus_version, manager, session_client_for
):
    version, layout = fundus_version
    client = session_client_for(manager)
    form = client.get(f"{_base(version)}/evaluations/").content.decode()
    assert 'value="dr_grading"' in form
    response = _upload(
        client, version, product_csv(layout), split="train", product="Acme DR", threshold="0.5"
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    evaluation = Evaluation.objects.latest("pk")
    assert evaluation.kind == "dr_grading" and evaluation.rule == "referable_dr"
    assert jobs.execute(evaluation.job.pk) == Job.State.SUCCEEDED, evaluation.job.log
    evaluation.refresh_from_db()
    assert evaluation.status == "succeeded", (evaluation.problems, evaluation.job.error)
    result = evaluation.result
    jsonschema.validate(result, SCHEMA)

    # the expected figures, from the layout, by scikit-learn
    ref = {(s, e): REFERENCE[s][e] for s in REFERENCE for e in REFERENCE[s]}
    scored = [(s, e) for s in PRODUCT for e in PRODUCT[s] if ref[(s, e)][0] != "ungradable"]
    y = [ref[k][0] >= 2 or ref[k][1] == "present" for k in scored]
    p = [PRODUCT[s][e][1] for s, e in scored]
    auc = roc_auc_score(y, p)
    assert auc == pytest.approx(5 / 6)
    assert result["figures"]["auc"]["value"] == pytest.approx(auc)
    patients = sorted(PRODUCT)
    py = [any(yy for (s, _), yy in zip(scored, y, strict=True) if s == q) for q in patients]
    pp = [max(PRODUCT[q][e][1] for e in PRODUCT[q]) for q in patients]
    assert result["figures"]["patient_auc"]["value"] == pytest.approx(roc_auc_score(py, pp))
    kappa = cohen_kappa_score(
        [ref[k][0] for k in scored],
        [PRODUCT[s][e][0] for s, e in scored],
        labels=[0, 1, 2, 3, 4],
        weights="quadratic",
    )
    assert result["figures"]["quadratic_kappa"]["value"] == pytest.approx(kappa)
    counts = result["counts"]
    assert (counts["images"], counts["skipped"], counts["reference_ungradable"]) == (6, 1, 1)
    assert counts["scored_images"] == 5 and counts["patients"] == 3
    matrix = result["grading"]["confusion_matrix"]
    assert matrix["counts"][5] == [0, 0, 0, 0, 0, 0, 1]  # ungradable reference, not given
    assert set(result["strata"]["laterality"]) == {"OD", "OS"}

    page = client.get(f"{_base(version)}/evaluations/{evaluation.pk}/")
    text = page.content.decode()
    assert page.status_code == 200
    assert 'data-figure="auc"' in text and 'data-figure="quadratic_kappa"' in text
    assert f"{auc:.3f}" in text and f"{kappa:.3f}" in text
    assert 'data-testid="dr-confusion"' in text and 'data-reference="ungradable"' in text
    assert 'data-figure="patient_auc"' in text and 'data-testid="referable-rule"' in text
    assert text.count("data:image/png;base64,") >= 2  # ROC and the grade matrix

    csv_rows = list(
        csv.DictReader(
            io.StringIO(
                client.get(f"{_base(version)}/evaluations/{evaluation.pk}/csv/").content.decode(
                    "utf-8-sig"
                )
            )
        )
    )
    kappa_row = next(
        r for r in csv_rows if r["figure"] == "quadratic_kappa" and r["scope"] == "overall"
    )
    assert float(kappa_row["value"]) == pytest.approx(kappa)
    assert any(r["scope"] == "confusion_matrix" for r in csv_rows)
    downloaded = client.get(f"{_base(version)}/evaluations/{evaluation.pk}/json/")
    assert downloaded["Content-Disposition"].startswith("attachment")
    assert json.loads(downloaded.content) == result
    html = client.get(f"{_base(version)}/evaluations/{evaluation.pk}/html/").content.decode()
    assert 'data-testid="dr-confusion"' in html and "评估报告" in html


def test_the_command_scores_a_dr_submission_and_refuses_compare(fundus_version, tmp_path):
    version, layout = fundus_version
    submission = tmp_path / "dr.csv"
    submission.write_bytes(product_csv(layout))
    out = io.StringIO()
    args = ["evaluate", "--project", version.project.slug, "--version", "1.0.0"]
    args += ["--submission", str(submission), "--split", "train", "--bootstrap", "200"]
    call_command(*args, "--threshold", "0.5", "--out", str(tmp_path / "out"), stdout=out)
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    jsonschema.validate(result, SCHEMA)
    assert result["kind"] == "dr_grading"
    assert result["figures"]["auc"]["value"] == pytest.approx(5 / 6)
    assert "quadratic_kappa:" in out.getvalue() and "patient_auc:" in out.getvalue()
    # the product's dmo column (absent everywhere): the per-image and per-patient
    # DMO AUCs are printed, the patient's from the patient figure
    patient_dmo = result["figures"]["dmo_patient_auc"]
    assert patient_dmo["value"] == pytest.approx(0.5)  # one call for all: ties
    assert f"dmo_patient_auc: {patient_dmo['value']} (95% CI" in out.getvalue()
    assert "dmo_auc: " in out.getvalue()
    assert (tmp_path / "out" / "report.html").read_text().count('data-testid="dr-confusion"') == 2
    with pytest.raises(CommandError, match="--compare"):
        call_command(*args, "--compare", str(submission), "--out", str(tmp_path / "c"))


def test_a_malformed_dr_csv_names_every_line_and_column(
    fundus_version, manager, session_client_for, client_for
):
    version, layout = fundus_version
    codes = sorted(layout)
    bad = (
        "case_id,dr_grade,referable_probability\n"
        f"{codes[0]},5,0.2\n"
        "NOT-A-CASE,1,0.2\n"
        f"{codes[1]},,0.4\n"
    ).encode()
    client = session_client_for(manager)
    response = _upload(client, version, bad, split="train", headers={"HTTP_ACCEPT_LANGUAGE": "en"})
    assert response.status_code == 400
    text = response.content.decode()
    for line, code in ((2, "grade_range"), (3, "unknown_case"), (4, "missing_value")):
        assert f'data-code="{code}" data-line="{line}"' in text, code
    assert "dr_grade 5 is not a DR grade" in text and "dr_grade is empty" in text
    assert not Evaluation.objects.exists()

    # the REST API, as the pages' JavaScript calls it (session + CSRF): the kind
    # is found from the header, the same problems come back as JSON, and a good
    # file is queued and scored
    api = client_for(manager)
    url = f"/api/v1/dataset-versions/{version.pk}/evaluations/"
    refused = api.post(
        url, {"submission": SimpleUploadedFile("dr.csv", bad), "split": "train"}, format="multipart"
    )
    assert refused.status_code == 400
    assert [
        (p["line"], p["code"], p["params"].get("column")) for p in refused.json()["problems"]
    ] == [
        (2, "grade_range", "dr_grade"),
        (3, "unknown_case", "case_id"),
        (4, "missing_value", "dr_grade"),
    ]
    with TestCase.captureOnCommitCallbacks(execute=False):
        created = api.post(
            url,
            {
                "submission": SimpleUploadedFile("dr.csv", product_csv(layout)),
                "split": "train",
                "kind": "dr_grading",  # named explicitly, as a client may
            },
            format="multipart",
        )
    assert created.status_code == 202, created.content
    assert created.json()["kind"] == "dr_grading"
    assert jobs.execute(created.json()["job"]) == Job.State.SUCCEEDED
    scored = api.get(f"{url}{created.json()['id']}/").json()
    assert scored["result"]["figures"]["auc"]["value"] == pytest.approx(5 / 6)

    # a version whose frozen schema has no DR grade refuses the kind outright
    snapshot = version.snapshot
    schema = snapshot["schema"]
    snapshot["schema"] = {"definition": {"case_fields": [{"key": "nodules_present"}]}}
    try:
        with pytest.raises(evaluation_jobs.EvaluationRefused):
            evaluation_jobs.truth_for(version, "train", evaluation_jobs.DR_KIND)
    finally:
        snapshot["schema"] = schema
    truth, _ = evaluation_jobs.truth_for(version, "train", evaluation_jobs.DR_KIND)
    assert len(truth.images) == 6


def test_macular_oedema_figures_sit_next_to_the_dr_figures_in_the_report(
    fundus_version, manager, session_client_for
):
    version, layout = fundus_version
    client = session_client_for(manager)
    # DMO probability: high for patient 3's right eye (the one oedema), low elsewhere
    rows = ["case_id,dr_grade,referable_probability,dmo,dmo_probability"]
    expected_y, expected_s = [], []
    for code, (seed, eye) in sorted(layout.items()):
        if eye not in PRODUCT[seed]:
            continue
        grade, p = PRODUCT[seed][eye]
        dmo_p = 0.8 if (seed, eye) == (3, "OD") else (0.3 if seed == 1 else 0.1)
        rows.append(f"{code},{grade},{p},{'present' if dmo_p >= 0.5 else 'absent'},{dmo_p}")
        expected_y.append(REFERENCE[seed][eye][1] == "present")
        expected_s.append(dmo_p)
    response = _upload(client, version, ("\n".join(rows) + "\n").encode(), split="train")
    assert response.status_code == 302, response.content.decode()[:3000]
    evaluation = Evaluation.objects.latest("pk")
    assert jobs.execute(evaluation.job.pk) == Job.State.SUCCEEDED, evaluation.job.log
    evaluation.refresh_from_db()
    result = evaluation.result
    jsonschema.validate(result, SCHEMA)
    assert result["figures"]["dmo_auc"]["value"] == pytest.approx(
        roc_auc_score(expected_y, expected_s)
    )
    assert result["figures"]["dmo_sensitivity"]["value"] == pytest.approx(1.0)
    # patient 3's left eye: reference oedema ungradable, counted and left out
    assert result["counts"]["reference_dmo_ungradable"] == 1
    assert result["counts"]["dmo_scored_images"] == 5
    assert result["grading"]["dmo"]["tables"]["image"] == {"tp": 1, "fn": 0, "tn": 4, "fp": 0}
    # per patient: patient 1 (absent, max 0.3), 2 (absent, 0.1), 3 (present, 0.8;
    # its left eye is ungradable and skipped)
    assert result["figures"]["dmo_patient_auc"]["value"] == pytest.approx(
        roc_auc_score([False, False, True], [0.3, 0.1, 0.8])
    )
    assert result["grading"]["dmo"]["tables"]["patient"] == {"tp": 1, "fn": 0, "tn": 2, "fp": 0}
    assert result["figures"]["dmo_patient_sensitivity"]["value"] == pytest.approx(1.0)
    assert result["figures"]["dmo_patient_specificity"]["value"] == pytest.approx(1.0)
    assert [result["counts"][f"dmo_{k}_patients"] for k in ("reference", "scored", "present")] == [
        3,
        3,
        1,
    ]
    page = f"{_base(version)}/evaluations/{evaluation.pk}/"
    text = client.get(page, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    figures = text[text.index('data-testid="evaluation-figures"') :]
    assert figures.index('data-figure="auc"') < figures.index('data-figure="dmo_auc"')
    assert "macular oedema: AUC" in text and 'data-testid="dmo-tables"' in text
    chinese = client.get(page, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "黄斑水肿：AUC" in chinese and "macular oedema: AUC" not in chinese
    assert 'data-plot="dmo_roc"' in text
    assert "images with an ungradable reference DMO" in text
    # the per-patient DMO figures, after the per-image ones, its table and rule
    assert figures.index('data-figure="dmo_auc"') < figures.index('data-figure="dmo_patient_auc"')
    assert "macular oedema: patient-level AUC" in text
    assert "macular oedema: patient-level sensitivity" in text
    dmo_tables = text[text.index('data-testid="dmo-tables"') :]
    patient_row = dmo_tables[dmo_tables.index('data-table="patient"') :]
    patient_row = patient_row[: patient_row.index("</tr>")]
    assert "per patient, at the product&#x27;s call" in patient_row
    assert [c.split("<")[0] for c in patient_row.split('class="num">')[1:]] == ["1", "0", "2", "0"]
    assert 'data-testid="dmo-patient-rule"' in text
    assert "Patients with a gradable reference oedema: 3; scored: 3, of whom 1 with oedema." in text
    assert "patients scored for DMO 3" in text
    csv_text = client.get(f"{_base(version)}/evaluations/{evaluation.pk}/csv/").content.decode(
        "utf-8-sig"
    )
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert any(r["figure"] == "dmo_auc" and r["scope"] == "overall" for r in rows)
    assert any(r["scope"] == "dmo_table" for r in rows)
    overall = {r["figure"]: r for r in rows if r["scope"] == "overall"}
    assert float(overall["dmo_patient_auc"]["value"]) == pytest.approx(1.0)
    assert float(overall["dmo_patient_sensitivity"]["value"]) == pytest.approx(1.0)
    assert overall["dmo_patient_specificity"]["ci_low"] != ""
    dmo_cells = [r for r in rows if r["scope"] == "dmo_table"]
    patient_cells = {r["level"]: r["value"] for r in dmo_cells if r["stratum"] == "patient"}
    assert patient_cells == {"tp": "1", "fn": "0", "tn": "2", "fp": "0"}


def test_the_frozen_version_carries_laterality_so_scoring_reads_no_dicom_header(
    fundus_version, monkeypatch
):
    from annotation_server.datasets.package_input import build_package_input

    version, layout = fundus_version
    snap = version.cases.order_by("case_code").first().snapshot
    (instance,) = snap["series"]["instances"]
    assert instance["source_format"] in ("JPEG", "PNG", "TIFF")
    assert instance["laterality"] in ("R", "L")
    inp = build_package_input(version)
    series = {s.series_uid: s for c in inp.cases for s in c.series}
    assert all(s.instances[0].laterality in ("R", "L") for s in series.values())

    def no_header(*args, **kwargs):
        raise AssertionError("the evaluation read a DICOM header")

    monkeypatch.setattr(pydicom, "dcmread", no_header)
    sides = evaluation_jobs.laterality_of(inp)
    codes = {s.series_uid: c.case_id for c in inp.cases for s in c.series}
    assert {codes[uid]: side for uid, side in sides.items()} == {
        code: eye for code, (_, eye) in layout.items()
    }
    truth, _ = evaluation_jobs.truth_for(version, "train", "dr_grading", laterality=True)
    assert {i.case_id: i.laterality for i in truth.images} == {
        code: eye for code, (_, eye) in layout.items()
    }


def test_a_version_frozen_before_laterality_was_recorded_reads_it_from_the_header(
    fundus_version,
):
    from dataclasses import replace

    from annotation_server.datasets.package_input import build_package_input

    version, layout = fundus_version
    inp = build_package_input(version)
    legacy = replace(
        inp,
        cases=tuple(
            replace(c, series=tuple(
                replace(s, instances=tuple(replace(i, laterality=None) for i in s.instances))
                for s in c.series))
            for c in inp.cases
        ),
    )  # fmt: skip
    sides = evaluation_jobs.laterality_of(legacy)
    codes = {s.series_uid: c.case_id for c in inp.cases for s in c.series}
    assert {codes[uid]: side for uid, side in sides.items()} == {
        code: eye for code, (_, eye) in layout.items()
    }
