from django.contrib import admin

from annotation_server.reading.models import CaseLabel, Finding, ReadingTask


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
