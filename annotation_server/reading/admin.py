from django.contrib import admin

from annotation_server.reading.models import (
    CaseLabel,
    Finding,
    QualificationAttempt,
    QualificationTest,
    ReadingTask,
)


@admin.register(ReadingTask)
class ReadingTaskAdmin(admin.ModelAdmin):
    list_display = ("case", "reader", "phase", "state", "due_at", "submitted_at", "active_seconds")
    list_filter = ("state", "phase", "case__project")
    raw_id_fields = ("case", "reader", "attempt")


@admin.register(Finding)
class FindingAdmin(admin.ModelAdmin):
    list_display = ("uid", "task", "finding_type", "source", "version", "updated_at")
    list_filter = ("finding_type", "source")
    raw_id_fields = ("task", "derived_from")


@admin.register(CaseLabel)
class CaseLabelAdmin(admin.ModelAdmin):
    list_display = ("task", "version", "updated_at")
    raw_id_fields = ("task",)


@admin.register(QualificationTest)
class QualificationTestAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "min_sensitivity", "max_fp_per_case", "active")
    filter_horizontal = ("cases",)


@admin.register(QualificationAttempt)
class QualificationAttemptAdmin(admin.ModelAdmin):
    list_display = ("test", "reader", "number", "sensitivity", "fp_per_case", "passed")
    list_filter = ("passed",)
