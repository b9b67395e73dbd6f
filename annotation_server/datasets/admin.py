from django.contrib import admin

from annotation_server.datasets.models import DatasetCase, DatasetVersion


class DatasetCaseInline(admin.TabularInline):
    model = DatasetCase
    extra = 0
    raw_id_fields = ("case",)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    list_display = ("project", "version", "parent", "frozen", "frozen_at", "manifest_sha256")
    list_filter = ("frozen", "project")
    inlines = [DatasetCaseInline]


@admin.register(DatasetCase)
class DatasetCaseAdmin(admin.ModelAdmin):
    list_display = ("dataset_version", "case", "split", "retired")
    list_filter = ("split", "retired")
