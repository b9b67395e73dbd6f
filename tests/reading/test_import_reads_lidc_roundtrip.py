"""LIDC XML written by export/lidc_xml.py reads back through the read importer:
the outlines land on the same images with the same points, the characteristics
come back, small nodules stay points."""

from __future__ import annotations

import pytest

from annotation_server.reading.importers.services import import_file
from annotation_server.reading.models import Finding, ReadingTask
from export import lidc_xml as exporter
from export.model import FindingRecord, InstanceRecord, PackageInput, ReadRecord, SeriesRecord
from tests import factories
from tests.reading.import_helpers import case_for_truth, lidc_xml, truth

pytestmark = pytest.mark.django_db


def _series_record(t: dict) -> SeriesRecord:
    return SeriesRecord(
        series_uid=t["series_instance_uid"],
        study_uid=t["study_instance_uid"],
        modality="CT",
        instances=tuple(
            InstanceRecord(
                sop_instance_uid=f["sop_instance_uid"],
                sop_class_uid=t["sop_class_uid"],
                slice_index=f["slice_index"],
                path="",
                sha256="0" * 64,
                position=tuple(f["image_position_patient"]),
            )
            for f in t["files"]
        ),
    )


def _package(project, reads) -> PackageInput:
    return PackageInput(
        dataset_id=project.slug,
        version="1.0.0",
        title="t",
        description="",
        frozen_at="2026-12-01T10:00:00+00:00",
        modality="CT",
        body_part="CHEST",
        tool_version="RefSet test",
        protocol={},
        schema=project.label_schema.definition,
        deid_profile={},
        qc_profile={},
        cases=(),
        reads=tuple(reads),
    )


def _shape_key(finding: Finding):
    return (
        finding.geometry["kind"],
        [(s["slice_index"], [tuple(p) for p in s["points"]]) for s in finding.geometry["shapes"]],
    )


def test_the_lidc_exporters_output_reads_back(project):
    t = truth()
    first = case_for_truth(project, t)
    report = import_file(project, "in.xml", lidc_xml(), "lidc-xml")
    assert report.imported, report.errors
    reads = []
    for task in ReadingTask.objects.filter(case=first).select_related("reader__profile"):
        reads.append(
            ReadRecord(
                read_id=str(task.pk),
                case_id=first.code,
                series_uid=t["series_instance_uid"],
                reader_pseudo_id=task.reader.profile.pseudonym,
                phase=task.phase,
                findings=tuple(
                    FindingRecord(
                        finding_id=f"F{f.pk:04d}",
                        finding_type=f.finding_type,
                        geometry=f.geometry,
                        attributes=f.attributes,
                    )
                    for f in task.findings.order_by("id")
                ),
            )
        )
    written = exporter.document(_package(project, reads), _series_record(t), reads)

    other = factories.ProjectFactory(slug="lung-lidc-back", label_schema=project.label_schema)
    second = case_for_truth(other, t)
    back = import_file(other, "out.xml", written, "lidc-xml")
    assert back.imported, back.errors
    assert back.reads == report.reads and back.findings == report.findings
    before = sorted(
        (_shape_key(f), sorted(f.attributes.items()))
        for f in Finding.objects.filter(task__case=first)
    )
    after = sorted(
        (_shape_key(f), sorted(f.attributes.items()))
        for f in Finding.objects.filter(task__case=second)
    )
    assert after == before
