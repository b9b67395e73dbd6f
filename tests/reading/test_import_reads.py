"""Importing existing reads: LIDC-IDRI XML covering every element, the error
cases (each refuses its whole file, the other files import), settling on
imported reads under the pylidc rule, and the RefSet JSON round trip."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

from annotation_server.adjudication import services as adjudication
from annotation_server.audit.models import AuditEvent
from annotation_server.imaging.ingest import keys
from annotation_server.imaging.models import IdentityMapping
from annotation_server.jobs.models import Job
from annotation_server.projects.models import Case, LabelSchema
from annotation_server.reading import services as reading
from annotation_server.reading.importers import lidc_xml
from annotation_server.reading.importers.services import (
    detect_format,
    export_reads,
    import_file,
    import_files,
)
from annotation_server.reading.models import CaseLabel, Finding, ReadingTask
from fixtures.lidc import UNKNOWN_SOP
from tests import factories
from tests.reading.import_helpers import case_for_truth, truth
from tests.reading.import_helpers import lidc_xml as sample_xml

pytestmark = pytest.mark.django_db


@pytest.fixture
def lidc_case(project):
    protocol = project.protocol
    protocol.match_rule = "pylidc"
    protocol.save()
    return case_for_truth(project, truth())


def _tasks(case):
    return list(
        ReadingTask.objects.filter(case=case).select_related("reader__profile").order_by("id")
    )


def test_lidc_xml_with_every_element_becomes_submitted_reads(lidc_case, project, manager):
    report = import_file(project, "LIDC-0001.xml", sample_xml(), "lidc-xml", actor=manager)
    assert report.imported, report.errors
    assert report.cases == ["LIDC0001"] and report.reads == 4 and report.findings == 14
    assert report.unmatched_instances == [] and report.unknown_series == []
    assert any("Chest-radiograph" in w for w in report.warnings)
    assert any("non-nodule" in w for w in report.warnings)  # this schema has no such type
    tasks = _tasks(lidc_case)
    assert len(tasks) == 4
    for task in tasks:
        assert task.state == ReadingTask.State.SUBMITTED and task.submitted_at and task.phase == 1
        user = task.reader
        assert not user.is_active and not user.has_usable_password()
        assert user.first_name == user.last_name == user.email == ""
        assert user.profile.pseudonym.startswith("LIDC-")
        assert not user.memberships.exists()  # never assigned anything
    assert sorted(report.readers) == sorted(t.reader.profile.pseudonym for t in tasks)

    first = Finding.objects.filter(task=tasks[0]).order_by("id")
    contour = first[0]
    assert contour.finding_type == "nodule" and contour.geometry["kind"] == "contour"
    nodule = truth()["nodules"][0]
    slices = [s["slice_index"] for s in contour.geometry["shapes"]]
    assert nodule["centre_voxel"][2] in slices and len(slices) == len(set(slices)) >= 5
    assert len(contour.geometry["exclusions"]) == 1  # inclusion FALSE, kept as a hole
    assert len(contour.geometry["extra_inclusions"]) == 1  # second outline on one slice
    assert contour.geometry["origin"] == {"format": "lidc-xml", "id": "Nodule 001"}
    attrs = contour.attributes
    assert attrs["calcification"] == 6 and attrs["internal_structure"] == 1
    assert attrs["texture"] == 5 and 1 <= attrs["malignancy"] <= 5
    assert set(attrs) >= {"subtlety", "sphericity", "margin", "lobulation", "spiculation"}
    assert attrs["long_axis_mm"] == pytest.approx(nodule["diameter_mm"], abs=2.0)
    # The centre in patient space comes from the series' geometry.
    centre = (contour.centre_x_mm, contour.centre_y_mm, contour.centre_z_mm)
    assert centre == pytest.approx(tuple(nodule["centre_mm"]), abs=2.0)
    small = first[3]
    assert small.geometry["kind"] == "point" and small.attributes == {}
    assert small.geometry["origin"]["small"] is True
    # Reader 2 named its images by an unknown SOP UID: placed by z within half a slice.
    second = Finding.objects.filter(task=tasks[1]).order_by("id")[0]
    assert [s["slice_index"] for s in second.geometry["shapes"]] == slices

    assert AuditEvent.objects.filter(action="reads.imported", project_id=project.pk).exists()
    assert Job.objects.filter(kind="adjudication.settle", params__case_id=lidc_case.pk).exists()
    assert report.settling == ["LIDC0001"]


def test_settling_runs_on_imported_reads_with_the_pylidc_rule(lidc_case, project, manager):
    assert import_file(project, "a.xml", sample_xml(), actor=manager).imported
    settlement = adjudication.settle_case(lidc_case.pk)
    clusters = list(settlement.clusters.order_by("number"))
    assert {c.match_rule for c in clusters} == {"pylidc"}
    assert all(c.match_threshold == 1.25 for c in clusters)  # the slice thickness
    readers = sorted(c.readers for c in clusters)
    assert readers == [2, 4, 4, 4]  # three nodules by all four, the small one by two
    lidc_case.refresh_from_db()
    assert lidc_case.state in (Case.State.ARBITRATION, Case.State.ADJUDICATED)


def test_non_nodules_import_when_the_schema_has_the_type(lidc_case, project):
    definition = copy.deepcopy(project.label_schema.definition)
    definition["finding_types"].append(
        {
            "key": "non_nodule",
            "label": {"en": "Non-nodule", "zh-hans": "非结节"},
            "geometry": ["point"],
            "attributes": [],
        }
    )
    project.label_schema = LabelSchema.objects.create(
        key="lung-lidc", version=1, name="LIDC", definition=definition
    )
    project.save()
    report = import_file(project, "a.xml", sample_xml())
    assert report.imported and report.findings == 15
    nn = Finding.objects.get(task__case=lidc_case, finding_type="non_nodule")
    assert nn.geometry["kind"] == "point" and nn.geometry["shapes"][0]["points"] == [[30, 30]]
    assert nn.geometry["shapes"][0]["slice_index"] == 1


def test_original_uids_are_matched_through_the_key_store(project):
    t = copy.deepcopy(truth())
    originals = {
        "series": t["series_instance_uid"],
        "sops": [f["sop_instance_uid"] for f in t["files"]],
    }
    t["series_instance_uid"] = "2.25.4242"
    for i, f in enumerate(t["files"]):
        f["sop_instance_uid"] = f"2.25.4242{i:03d}"
    case = case_for_truth(project, t)
    recorder = keys.MappingRecorder(project, keys.project_secret(project))
    recorder.add(
        [
            SimpleNamespace(
                kind=IdentityMapping.Kind.SERIES_UID,
                original=originals["series"],
                replacement="2.25.4242",
            )
        ]
        + [
            SimpleNamespace(
                kind=IdentityMapping.Kind.SOP_UID, original=o, replacement=f"2.25.4242{i:03d}"
            )
            for i, o in enumerate(originals["sops"])
        ]
    )
    recorder.flush()
    xml = sample_xml(z_only_readers=())
    report = import_file(project, "orig.xml", xml)
    assert report.imported, report.errors
    assert ReadingTask.objects.filter(case=case).count() == 4
    # Without the z fallback too: the SOP UIDs alone placed every outline.
    finding = Finding.objects.filter(task__case=case).order_by("id")[0]
    assert truth()["nodules"][0]["centre_voxel"][2] in [
        s["slice_index"] for s in finding.geometry["shapes"]
    ]


def _bad_z(xml: bytes) -> bytes:
    """Reader 2's first roi (placed by z only) moves 50 mm off the series."""
    text = xml.decode()
    at = text.index(UNKNOWN_SOP)
    start = text.rindex("<imageZposition>", 0, at)
    end = text.index("</imageZposition>", start)
    return (text[:start] + "<imageZposition>999.000000" + text[end:]).encode()


def test_a_file_with_an_unmatched_image_imports_nothing_and_the_others_import(
    lidc_case, project, manager
):
    t2 = copy.deepcopy(truth(seed=8))
    other = case_for_truth(project, t2, code="LIDC0002")
    reports = import_files(
        project,
        [("bad.xml", _bad_z(sample_xml())), ("good.xml", sample_xml(seed=8))],
        "lidc-xml",
        actor=manager,
    )
    bad, good = reports
    assert not bad.imported and good.imported
    assert len(bad.unmatched_instances) == 1 and "z 999 mm" in bad.unmatched_instances[0]
    assert bad.reads == bad.findings == 0 and bad.cases == []
    assert not ReadingTask.objects.filter(case=lidc_case).exists()
    assert not get_user_model_imported(bad)
    assert ReadingTask.objects.filter(case=other).count() == 4
    refused = AuditEvent.objects.get(action="reads.import_refused", project_id=project.pk)
    assert refused.data["file"] == "bad.xml" and refused.data["unmatched_instances"]


def get_user_model_imported(report) -> list:
    from django.contrib.auth import get_user_model

    return list(get_user_model().objects.filter(profile__pseudonym__in=report.readers))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<LidcReadMessage><ResponseHeader></LidcReadMessage>", "Malformed XML"),
        (b"not xml at all", "Malformed XML"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
            b"<LidcReadMessage>&b;</LidcReadMessage>",
            "Refused XML construct",
        ),
        (b"<IdriReadMessage/>", "not LidcReadMessage"),
        (b"<LidcReadMessage><ResponseHeader/></LidcReadMessage>", "no readingSession"),
    ],
)
def test_malformed_or_hostile_xml_is_refused(lidc_case, project, data, expected):
    report = import_file(project, "x.xml", data, "lidc-xml")
    assert not report.imported
    assert any(expected in e for e in report.errors), report.errors
    assert not ReadingTask.objects.exists()


def test_an_unknown_series_is_reported(lidc_case, project):
    xml = sample_xml().replace(truth()["series_instance_uid"].encode(), b"2.25.1")
    report = import_file(project, "x.xml", xml)
    assert not report.imported and report.unknown_series == ["2.25.1"]
    assert not ReadingTask.objects.exists()


def test_the_same_file_twice_is_refused_the_second_time(lidc_case, project):
    assert import_file(project, "a.xml", sample_xml()).imported
    again = import_file(project, "a-copy.xml", sample_xml())
    assert not again.imported and any("already imported" in e for e in again.errors)
    assert ReadingTask.objects.filter(case=lidc_case).count() == 4


def test_cases_not_open_for_reading_are_refused(project):
    case = case_for_truth(project, truth(), state=Case.State.QC, qc_status=Case.QcStatus.PENDING)
    report = import_file(project, "a.xml", sample_xml())
    assert not report.imported and any("not passed QC" in e for e in report.errors)
    Case.objects.filter(pk=case.pk).update(state=Case.State.ADJUDICATED)
    report = import_file(project, "a.xml", sample_xml())
    assert not report.imported and any("adjudicated" in e for e in report.errors)
    # A case that passed QC moves into reading with its imported reads.
    Case.objects.filter(pk=case.pk).update(state=Case.State.QC, qc_status=Case.QcStatus.PASS)
    report = import_file(project, "a.xml", sample_xml())
    assert report.imported
    case.refresh_from_db()
    assert case.state == Case.State.READING


def test_characteristics_outside_the_schema_are_left_out_with_a_warning(lidc_case, project):
    xml = sample_xml().replace(b"<malignancy>3</malignancy>", b"<malignancy>9</malignancy>", 1)
    report = import_file(project, "a.xml", xml)
    assert report.imported
    assert any("malignancy = 9" in w for w in report.warnings)
    first = Finding.objects.filter(task__case=lidc_case).order_by("id")[0]
    assert "malignancy" not in first.attributes and first.attributes["texture"] == 5


def test_the_parser_reads_every_element():
    doc = lidc_xml.parse(sample_xml())
    assert doc.series_uid == truth()["series_instance_uid"]
    assert doc.study_uid == truth()["study_instance_uid"]
    assert [s.reader_id for s in doc.sessions] == ["anon-01", "anon-02", "anon-03", "anon-04"]
    assert doc.skipped_cxr_sessions == 1 and doc.problems == []
    n = doc.sessions[0].nodules[0]
    assert set(n.characteristics) == set(lidc_xml.CHARACTERISTICS)
    assert any(not r.inclusion for r in n.rois) and not n.is_small
    assert doc.sessions[0].nodules[-1].is_small
    nn = doc.sessions[2].non_nodules[0]
    assert nn.point == (30.0, 30.0) and nn.sop_uid and nn.z is not None


def test_format_detection():
    assert detect_format("a.XML", b"") == "lidc-xml"
    assert detect_format("a.json", b"") == "refset-json"
    assert detect_format("upload", b'  {"format": 1}') == "refset-json"


# ---------------------------------------------------------------- RefSet JSON


def _read_case(case, readers, labels):
    for n, reader in enumerate(readers):
        task = ReadingTask.objects.create(case=case, reader=reader)
        geometry = {
            "kind": "ellipse",
            "shapes": [
                {"slice_index": s, "points": [[60 + n, 60], [70 + n, 71]]} for s in (4, 5, 6)
            ],
            "centre_mm": [1.5, 2.5, -150.0],
        }
        reading.save_finding(
            task,
            reader,
            finding_type="nodule",
            geometry=geometry,
            attributes=factories.complete_nodule_attributes(malignancy=2 + n),
        )
        reading.save_finding(
            task,
            reader,
            finding_type="nodule",
            geometry={
                "kind": "point",
                "shapes": [{"slice_index": 9, "points": [[20, 30]]}],
                "centre_mm": None,
            },
            attributes=factories.complete_nodule_attributes(),
        )
        reading.save_case_label(task, reader, labels, expected_version=None)
        reading.submit(task, reader, expected_version=None)


def _normalised(document):
    out = []
    for case in document["cases"]:
        reads = []
        for read in case["reads"]:
            reads.append(
                (
                    read["phase"],
                    read["submitted_at"],
                    json.dumps(read["labels"], sort_keys=True),
                    json.dumps(
                        [{k: v for k, v in f.items() if k != "uid"} for f in read["findings"]],
                        sort_keys=True,
                    ),
                )
            )
        out.append((case["case"], case["series_uid"], sorted(reads)))
    return out


def test_json_round_trip_between_projects(project, reader_a, reader_b, reader_c, tmp_path, manager):
    source = case_for_truth(project, truth())
    labels = {"nodules_present": True, "image_quality": 3}
    _read_case(source, [reader_a, reader_b, reader_c], labels)
    out = tmp_path / "reads.json"
    call_command("export_reads", project=project.slug, out=str(out))
    exported = json.loads(out.read_text())
    assert exported["format"] == "refset-reads" and len(exported["cases"][0]["reads"]) == 3
    shape = exported["cases"][0]["reads"][0]["findings"][0]["geometry"]["shapes"][0]
    assert shape["sop_instance_uid"] and shape["z_mm"] is not None
    assert "reader_a" not in out.read_text()  # pseudonyms only

    other = factories.ProjectFactory(slug="lung-copy", label_schema=project.label_schema)
    target = case_for_truth(other, truth())
    call_command(
        "import_reads", str(out), project=other.slug, format="refset-json", as_user=manager.username
    )
    tasks = list(ReadingTask.objects.filter(case=target))
    assert len(tasks) == 3 and all(t.state == ReadingTask.State.SUBMITTED for t in tasks)
    assert {t.reader.profile.pseudonym[:4] for t in tasks} == {"IMP-"}
    assert CaseLabel.objects.filter(task__in=tasks).count() == 3
    assert _normalised(export_reads(other)) == _normalised(exported)
    assert Job.objects.filter(kind="adjudication.settle", params__case_id=target.pk).exists()


def test_json_places_shapes_by_z_when_the_other_instance_has_other_uids(project, reader_a):
    source = case_for_truth(project, truth())
    _read_case(source, [reader_a], {"nodules_present": True, "image_quality": 2})
    document = export_reads(project)
    t = copy.deepcopy(truth())
    for f in t["files"]:
        f["sop_instance_uid"] = f["sop_instance_uid"] + "9"
    other = factories.ProjectFactory(slug="lung-elsewhere", label_schema=project.label_schema)
    other.protocol.readers_per_case = 1
    other.protocol.save()
    target = case_for_truth(other, t)
    report = import_file(other, "reads.json", json.dumps(document).encode())
    assert report.imported, report.errors
    finding = Finding.objects.filter(task__case=target, geometry__kind="ellipse").get()
    assert [s["slice_index"] for s in finding.geometry["shapes"]] == [4, 5, 6]
    assert "sop_instance_uid" not in finding.geometry["shapes"][0]
    assert report.settling == [target.code]  # one reader per case: complete at once


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{", "Malformed JSON"),
        (b'{"format": "other"}', "Not a RefSet reads document"),
        (b'{"format": "refset-reads", "version": 7}', "Unsupported version"),
        (b'{"format": "refset-reads", "version": 1, "cases": {}}', "must be a list"),
    ],
)
def test_broken_json_is_refused(project, data, expected):
    report = import_file(project, "r.json", data)
    assert not report.imported and any(expected in e for e in report.errors), report.errors


def test_json_with_values_the_schema_refuses_imports_nothing(project):
    case = case_for_truth(project, truth())
    document = {
        "format": "refset-reads",
        "version": 1,
        "cases": [
            {
                "case": case.code,
                "series_uid": case.series.series_uid,
                "reads": [
                    {"reader": "RD1", "phase": 1, "labels": {"image_quality": 3}, "findings": []},
                    {
                        "reader": "RD2",
                        "phase": 1,
                        "labels": {},
                        "findings": [
                            {
                                "finding_type": "nodule",
                                "attributes": {"malignancy": 11},
                                "geometry": {
                                    "kind": "point",
                                    "shapes": [{"slice_index": 2, "points": [[1, 1]]}],
                                },
                            }
                        ],
                    },
                ],
            }
        ],
    }
    report = import_file(project, "r.json", json.dumps(document).encode())
    assert not report.imported and any("malignancy" in e for e in report.errors)
    assert not ReadingTask.objects.filter(case=case).exists()


def test_the_command_exits_1_when_a_file_is_refused(lidc_case, project, tmp_path, capsys):
    (tmp_path / "good.xml").write_bytes(sample_xml())
    (tmp_path / "bad.xml").write_bytes(b"<oops")
    with pytest.raises(CommandError) as exc:
        call_command("import_reads", str(tmp_path), project=project.slug)
    assert exc.value.returncode == 1
    printed = capsys.readouterr().out
    assert "good.xml [lidc-xml]: imported" in printed and "bad.xml [lidc-xml]: REFUSED" in printed
    assert ReadingTask.objects.filter(case=lidc_case).count() == 4


# ---------------------------------------------------------------- REST and page


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def test_rest_import_and_export_for_managers_only(
    lidc_case, project, manager, reader_a, outsider, session_client_for
):
    url = f"/api/v1/projects/{project.slug}/reads/import/"
    files = {"files": [_upload("a.xml", sample_xml()), _upload("b.xml", b"<x")]}
    assert session_client_for(reader_a).post(url, files, format="multipart").status_code == 403
    assert session_client_for(outsider).post(url, files, format="multipart").status_code == 404
    files = {"files": [_upload("a.xml", sample_xml()), _upload("b.xml", b"<x")]}
    response = session_client_for(manager).post(url, files, format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["imported"] == 1 and body["refused"] == 1
    assert body["files"][0]["reads"] == 4 and body["files"][1]["errors"]
    export = session_client_for(manager).get(f"/api/v1/projects/{project.slug}/reads/export/")
    assert export.status_code == 200 and len(export.json()["cases"][0]["reads"]) == 4
    bad = session_client_for(manager).post(
        url, {"files": [_upload("a.xml", b"")], "format": "x"}, format="multipart"
    )
    assert bad.status_code == 400


def test_the_manager_page_shows_the_per_file_report(lidc_case, project, manager, reader_a):
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    assert client.login(username=manager.username, password=factories.PASSWORD)
    url = f"/projects/{project.slug}/reads/import/"
    page = client.get(url)
    assert page.status_code == 200 and b"import-reads-form" in page.content
    response = client.post(
        url, {"files": [_upload("a.xml", sample_xml()), _upload("bad.xml", b"<x")], "format": ""}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-file="a.xml" data-imported="yes"' in html
    assert 'data-file="bad.xml" data-imported="no"' in html and "Malformed XML" in html
    download = client.get(f"/projects/{project.slug}/reads/export/")
    assert download.status_code == 200 and download["Content-Disposition"].startswith("attachment")
    reader = Client()
    assert reader.login(username=reader_a.username, password=factories.PASSWORD)
    assert reader.get(url).status_code == 403


def test_the_shipped_sample_is_what_the_generator_writes():
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "fixtures" / "lidc" / "sample_seed7.xml"
    assert shipped.read_bytes() == sample_xml()


def test_with_a_review_phase_lidc_reads_are_the_final_phase_and_settle(lidc_case, project):
    protocol = project.protocol
    protocol.review_phase = True
    protocol.full_clean()  # the pylidc rule is one of the protocol's choices
    protocol.save()
    report = import_file(project, "a.xml", sample_xml())
    assert report.imported and report.settling == [lidc_case.code]
    assert set(ReadingTask.objects.filter(case=lidc_case).values_list("phase", flat=True)) == {2}
    settlement = adjudication.settle_case(lidc_case.pk)
    assert settlement.phase == 2 and settlement.clusters.count() == 4
