from django.contrib import admin

from annotation_server.projects.models import (
    Case,
    LabelSchema,
    Membership,
    Project,
    ReadingProtocol,
)


@admin.register(LabelSchema)
class LabelSchemaAdmin(admin.ModelAdmin):
    list_display = ("key", "version", "name", "created_at")
    search_fields = ("key", "name")


class ProtocolInline(admin.StackedInline):
    model = ReadingProtocol
    can_delete = False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "task_type", "status", "modality", "label_schema")
    list_filter = ("status", "task_type")
    search_fields = ("slug", "name")
    inlines = [ProtocolInline, MembershipInline]


@admin.register(ReadingProtocol)
class ReadingProtocolAdmin(admin.ModelAdmin):
    list_display = ("project", "readers_per_case", "review_phase", "match_rule", "arbitration_mode")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("project", "user", "role", "qualified")
    list_filter = ("project", "role", "qualified")
    raw_id_fields = ("user",)


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ("code", "project", "state", "qc_status", "site", "is_qualification")
    list_filter = ("project", "state", "qc_status", "is_qualification")
    search_fields = ("code",)
    raw_id_fields = ("series",)
