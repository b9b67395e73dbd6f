"""The agreement app on a fundus project (modality OP, the shipped fundus-dr
schema): the DR grade's kappas from the stored reads, ungradable left out and
counted, the derived referable DR and cup-to-disc ratio, per-lesion-type
matching on the photographs, disc/cup Dice; on the page (session login), in
the JSON report and the CSV, and the lesion rule as a manager's setting."""

from __future__ import annotations

import csv
import io
import re

import jsonschema
import pytest
from sklearn.metrics import cohen_kappa_score

from annotation_server.agreement import services
from annotation_server.audit.models import AuditEvent
from tests.agreement.seed import FUNDUS_DMO, FUNDUS_GRADES, seed_fundus_reads

pytestmark = pytest.mark.django_db
SCALE = [0, 1, 2, 3, 4]


@pytest.fixture
def fundus(project, reader_a, reader_b, reader_c):
    seed_fundus_reads(project, {"a": reader_a, "b": reader_b, "c": reader_c})
    settings = services.settings_for(project)
    settings.replicates = 50
    settings.save()
    return project


def _gradable_pair(x: str, y: str) -> tuple[list, list]:
    both = [
        (g, h)
        for g, h in zip(FUNDUS_GRADES[x], FUNDUS_GRADES[y], strict=True)
        if "ungradable" not in (g, h)
    ]
    return [g for g, _ in both], [h for _, h in both]


def test_fundus_report_from_the_stored_reads(fundus, reader_a, reader_b, reader_c):
    report = services.report_for(fundus)
    jsonschema.validate(report, services.schema())
    letter = {str(reader_a.pk): "a", str(reader_b.pk): "b", str(reader_c.pk): "c"}
    blocks = {b["key"]: b for b in report["case_labels"]}
    grade = blocks["dr_grade"]
    assert grade["kind"] == "ordinal" and grade["gwet_form"] == "AC2 (quadratic)"
    expected = []
    for pair in grade["pairwise"]:
        a, b = _gradable_pair(letter[pair["a"]], letter[pair["b"]])
        kappa = cohen_kappa_score(a, b, weights="quadratic", labels=SCALE)
        expected.append(kappa)
        assert pair["n"] == len(a)
        assert pair["kappa_quadratic"]["value"] == pytest.approx(kappa, abs=1e-6)
    assert grade["kappa_mean"]["quadratic"]["value"] == pytest.approx(
        sum(expected) / len(expected), abs=1e-6
    )
    assert grade["gwet_ac1"]["value"] is not None and grade["fleiss_kappa"]["value"] is not None
    outside = grade["outside_scale"]
    assert outside["ratings"] == {"ungradable": 2}
    assert (outside["cases_any"], outside["cases_all"]) == (1, 0)
    # Macular oedema: "ungradable" is off its scale too (the schema's outside_scale):
    # left out of kappa (FD006 keeps only c's answer), counted apart.
    oedema = blocks["dmo"]
    assert oedema["rated_by_two_or_more"] == 5
    assert oedema["outside_scale"]["ratings"] == {"ungradable": 2}
    for pair in oedema["pairwise"]:
        x, y = (FUNDUS_DMO[letter[pair[k]]] for k in ("a", "b"))
        kept = [i for i in range(6) if "ungradable" not in (x[i], y[i])]
        assert pair["n"] == len(kept)
        assert pair["kappa_unweighted"]["value"] == pytest.approx(
            cohen_kappa_score([x[i] for i in kept], [y[i] for i in kept]), abs=1e-6
        )
    # Derived on the server and stored with each read: measured like typed fields.
    assert blocks["referable_dr"]["derived"] is True
    assert blocks["referable_dr"]["rated_by_two_or_more"] == 5  # one read left on FD006
    cdr = blocks["vertical_cdr"]
    assert cdr["kind"] == "number" and cdr["rated_by_two_or_more"] == 6
    # Cup radii 30 / 33 / 27 px over a 120 px disc: ratios 0.5, 0.55, 0.45.
    assert cdr["mean_abs_difference"]["value"] == pytest.approx((0.05 + 0.05 + 0.1) / 3, abs=1e-3)
    # Lesions: matched per type on the image grid, the disc and cup left out.
    assert report["settings"]["lesion_rule"]["point_types"] == ["microaneurysm"]
    by_type = {t["finding_type"]: t for t in report["detection"]["by_type"]}
    assert set(by_type) >= {"microaneurysm", "haemorrhage", "hard_exudate"}
    assert "optic_disc" not in by_type
    ma = by_type["microaneurysm"]
    assert (ma["rule"], ma["threshold"], ma["marks"]) == ("centre_distance", 10.0, 11)
    # a and b are 6.7 px apart (one lesion), c is 13.4 px from b but 6.7 px from a.
    ab = next(p for p in ma["pairwise"] if {letter[p["a"]], letter[p["b"]]} == {"a", "b"})
    assert (ab["shared"], ab["marks_a"] + ab["marks_b"]) == (3, 8)
    assert ab["agreement"]["value"] == pytest.approx(6 / 8)
    assert by_type["hard_exudate"]["agreement"]["value"] == pytest.approx(1.0)
    outlines = {o["finding_type"]: o for o in report["outlines"]}
    disc = outlines["optic_disc"]
    assert disc["pairs"] == 18  # 6 images x 3 pairs
    # 120 px squares 6 or 12 px apart: Dice 114/120 and 108/120 (pixel centres).
    assert disc["dice"]["value"] == pytest.approx((2 * 114 / 120 + 108 / 120) / 3, abs=0.01)
    assert outlines["optic_cup"]["dice"]["value"] < disc["dice"]["value"]


def _cell(body: str, row_attr: str, testid: str) -> str:
    row = re.search(rf"<tr {row_attr}>(.*?)</tr>", body, re.S)
    assert row, row_attr
    cell = re.search(rf'data-testid="{testid}">(.*?)</td>', row.group(1), re.S)
    assert cell, testid
    return cell.group(1)


def test_agreement_page_shows_grade_kappa_lesions_and_disc_dice(
    fundus, manager, session_client_for
):
    report = services.store(fundus).report
    client = session_client_for(manager)
    body = client.get(f"/projects/{fundus.slug}/agreement/").content.decode()
    grade = next(b for b in report["case_labels"] if b["key"] == "dr_grade")
    kappa = _cell(body, 'data-field="dr_grade"', "kappa-mean")
    assert f"{grade['kappa_mean']['quadratic']['value']:.2f}" in kappa
    assert 'data-field="dr_grade-outside-scale"' in body and 'data-testid="outside-fleiss"' in body
    ma = next(t for t in report["detection"]["by_type"] if t["finding_type"] == "microaneurysm")
    cell = _cell(body, 'data-lesion-type="microaneurysm"', "lesion-agreement")
    assert f"{ma['agreement']['value']:.2f}" in cell
    disc = next(o for o in report["outlines"] if o["finding_type"] == "optic_disc")
    cell = _cell(body, 'data-outline="optic_disc"', "outline-dice")
    assert f"{disc['dice']['value']:.2f}" in cell
    assert "微动脉瘤" in body  # the schema's label of the lesion type, in the page language
    assert 'data-testid="lesion-rule"' in body  # the matching settings of a photo project
    data = client.get(f"/projects/{fundus.slug}/agreement/report.json").json()
    jsonschema.validate(data, services.schema())
    assert data["outlines"][0]["finding_type"] == "optic_disc"
    api = client.get(f"/api/v1/projects/{fundus.slug}/agreement/").json()
    assert api["case_labels"][0]["kappa_mean"]["quadratic"] == grade["kappa_mean"]["quadratic"]
    text = client.get(f"/projects/{fundus.slug}/agreement/report.csv").content.decode()
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    measures = {(r[0], r[1], r[2]) for r in rows}
    assert ("case_label", "dr_grade", "kappa_quadratic_mean_of_pairs") in measures
    assert ("lesion_type", "microaneurysm", "positive_specific_agreement") in measures
    assert ("outline", "optic_disc", "dice") in measures


def _ma_shared(report: dict, x, y) -> int:
    ma = next(t for t in report["detection"]["by_type"] if t["finding_type"] == "microaneurysm")
    return next(p["shared"] for p in ma["pairwise"] if {p["a"], p["b"]} == {str(x), str(y)})


def test_the_lesion_rule_is_a_managers_setting(
    fundus, manager, reader_b, reader_c, session_client_for
):
    before = services.store(fundus)
    # b and c mark FD005's microaneurysm 13.4 px apart: two lesions at 10 px.
    assert _ma_shared(before.report, reader_b.pk, reader_c.pk) == 2
    client = session_client_for(manager)
    response = client.post(
        f"/projects/{fundus.slug}/agreement/settings/",
        {
            "flag_below": "0.8",
            "replicates": "50",
            "nsd_tolerance_mm": "1.0",
            "lesion_point_radius_px": "20",
            "lesion_region_rule": "centre_distance",
            "lesion_region_threshold": "25",
        },
    )
    assert response.status_code == 302
    own = services.settings_for(fundus)
    assert (own.lesion_point_radius_px, own.lesion_region_rule) == (20.0, "centre_distance")
    assert AuditEvent.objects.filter(action="agreement.settings_changed").exists()
    assert services.fingerprint(fundus) != before.fingerprint
    report = services.store(fundus).report
    assert _ma_shared(report, reader_b.pk, reader_c.pk) == 3
    haem = next(t for t in report["detection"]["by_type"] if t["finding_type"] == "haemorrhage")
    assert (haem["rule"], haem["unit"]) == ("centre_distance", "px")
    # An IoU above 1 is refused on its field and nothing changes.
    client.post(
        f"/projects/{fundus.slug}/agreement/settings/",
        {"lesion_region_rule": "overlap_iou", "lesion_region_threshold": "1.5"},
    )
    own.refresh_from_db()
    assert (own.lesion_region_rule, own.lesion_region_threshold) == ("centre_distance", 25.0)


def test_management_command_prints_the_fundus_figures(fundus):
    from django.core.management import call_command

    out = io.StringIO()
    call_command("agreement", "--project", fundus.slug, stdout=out)
    text = out.getvalue()
    assert "Cohen kappa (quadratic), mean of 3 pairs" in text
    assert "left out: ungradable 2" in text
    assert re.search(r"microaneurysm\s+centre_distance 10.0 px", text)
    assert "Outline optic_disc (18 pairs): Dice 0.9" in text
