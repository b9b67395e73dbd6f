from django.contrib import admin

from annotation_server.imaging.models import Instance, Series, Study


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("study_uid", "project", "patient_pseudo_id", "site", "study_date")
    list_filter = ("project", "site")
    search_fields = ("study_uid", "patient_pseudo_id")


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ("series_uid", "modality", "manufacturer", "slice_thickness_mm", "num_instances")
    list_filter = ("modality", "manufacturer")
    search_fields = ("series_uid",)


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("sop_instance_uid", "series", "slice_index", "frame", "sha256")
    search_fields = ("sop_instance_uid", "sha256")
    raw_id_fields = ("series",)
