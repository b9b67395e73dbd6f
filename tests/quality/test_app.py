"""The quality app as its own layer: its model keeps the table the projects app
created, its content type and permissions follow it, its pages keep their
addresses and names, the job kind runs here, and the rule of what readers are
shown lives in qc/ where the projects API can use it too."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.urls import reverse

from annotation_server import registry
from annotation_server.quality.models import QcReport
from qc.result import reader_warnings

content_types = importlib.import_module("annotation_server.quality.migrations.0002_content_types")


def test_the_model_keeps_the_table_the_projects_app_created():
    assert QcReport._meta.app_label == "quality"
    assert QcReport._meta.db_table == "projects_qcreport"
    assert QcReport._meta.get_field("case").remote_field.related_name == "qc_reports"
    assert admin.site.is_registered(QcReport)


def test_the_qc_job_kind_runs_in_the_quality_app():
    assert registry.JOB_HANDLERS["qc.check_cases"] == "annotation_server.quality.jobs.check_cases"


def test_the_qc_pages_keep_their_addresses_and_names():
    assert reverse("qc", args=["p"]) == "/projects/p/qc/"
    assert reverse("qc-rerun", args=["p"]) == "/projects/p/qc/rerun/"
    assert reverse("qc-distribution-csv", args=["p"]) == "/projects/p/qc/distribution.csv"
    assert reverse("qc-override", args=["p", 3]) == "/projects/p/qc/3/override/"


def test_readers_see_the_warnings_and_failures_with_both_messages_in_report_order():
    results = [
        {"rule": "a", "status": "pass", "message_en": "ok", "message_zh": "好"},
        {"rule": "b", "status": "fail", "message_en": "bad", "message_zh": "差"},
        {"rule": "c", "status": "n/a", "message_en": "-", "message_zh": "-"},
        {"rule": "d", "status": "warn", "message_en": "meh", "message_zh": "一般"},
    ]
    assert reader_warnings(results) == [
        {"rule": "b", "en": "bad", "zh": "差"},
        {"rule": "d", "en": "meh", "zh": "一般"},
    ]
    assert reader_warnings([]) == []


@pytest.mark.django_db
def test_a_database_from_before_the_move_keeps_its_content_type_and_permissions():
    moved = ContentType.objects.get_for_model(QcReport)
    permissions = set(Permission.objects.filter(content_type=moved).values_list("pk", flat=True))
    assert permissions
    ContentType.objects.filter(pk=moved.pk).update(app_label="projects")

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection
    content_types.forwards(apps, editor)
    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(QcReport).pk == moved.pk
    assert (
        set(
            Permission.objects.filter(content_type__app_label="quality").values_list(
                "pk", flat=True
            )
        )
        >= permissions
    )
    content_types.backwards(apps, editor)
    assert ContentType.objects.get(pk=moved.pk).app_label == "projects"
    content_types.forwards(apps, editor)
    assert ContentType.objects.get(pk=moved.pk).app_label == "quality"
