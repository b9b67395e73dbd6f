from django.contrib import admin

from annotation_server.reading.models import (
    AssistModelVersion,
    CaseLabel,
    Finding,
    Proposal,
    ProposalDisposition,
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
    raw_id_fields = ("task", "derived_from", "proposal")


@admin.register(CaseLabel)
class CaseLabelAdmin(admin.ModelAdmin):
    list_display = ("task", "version", "updated_at")
    raw_id_fields = ("task",)


@admin.register(AssistModelVersion)
class AssistModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "version", "task", "source", "promoted", "registered_at")
    list_filter = ("name", "source", "promoted")
    readonly_fields = ("weights_sha256", "card", "path", "registered_by", "registered_at")


@admin.register(Proposal)
class ProposalAdmin(admin.ModelAdmin):
    list_display = ("case", "model_version", "finding_type", "score", "current", "created_at")
    list_filter = ("model_version", "current")
    raw_id_fields = ("case", "series", "model_version", "job")


@admin.register(ProposalDisposition)
class ProposalDispositionAdmin(admin.ModelAdmin):
    list_display = ("task", "proposal", "action", "dice", "hd95_mm", "decided_at")
    list_filter = ("action",)
    raw_id_fields = ("task", "proposal", "finding")
