from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _

from annotation_server.imaging.models import (
    IdentityMapping,
    Instance,
    PacsConnection,
    ProjectKey,
    Quarantine,
    Series,
    Study,
)


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


@admin.register(ProjectKey)
class ProjectKeyAdmin(admin.ModelAdmin):
    list_display = ("project", "created_at")
    exclude = ("secret_encrypted",)

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(IdentityMapping)
class IdentityMappingAdmin(admin.ModelAdmin):
    list_display = ("project", "kind", "replacement", "created_at")
    list_filter = ("project", "kind")
    exclude = ("original_encrypted",)
    search_fields = ("replacement",)

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Quarantine)
class QuarantineAdmin(admin.ModelAdmin):
    list_display = ("sop_instance_uid", "project", "modality", "reason", "status", "created_at")
    list_filter = ("project", "status")
    readonly_fields = (
        "project",
        "reason",
        "sop_instance_uid",
        "series_uid",
        "modality",
        "sha256",
        "file",
        "status",
        "reviewed_by",
        "reviewed_at",
    )
    actions = ["release_selected", "reject_selected"]

    def _review(self, request, queryset, action, verb):
        from annotation_server.imaging.ingest import quarantine

        note = f"{verb} in the admin by {request.user.get_username()} after review"
        done = 0
        for item in queryset:
            try:
                getattr(quarantine, action)(item, request.user, note)
                done += 1
            except (ValueError, PermissionDenied) as exc:
                self.message_user(request, f"{item}: {exc}", level="error")
        self.message_user(request, f"{done} instance(s) {verb.lower()}.")

    @admin.action(description=_("Release into the project (reviewed, no burned-in text)"))
    def release_selected(self, request, queryset):
        self._review(request, queryset, "release", "Released")

    @admin.action(description=_("Reject (delete the stored file)"))
    def reject_selected(self, request, queryset):
        self._review(request, queryset, "reject", "Rejected")


@admin.register(PacsConnection)
class PacsConnectionAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "base_url", "auth", "site")
    exclude = ("secret_encrypted",)
