from django.contrib import admin

from annotation_server.adjudication.models import ArbitrationTask, ReferenceFinding


@admin.register(ArbitrationTask)
class ArbitrationTaskAdmin(admin.ModelAdmin):
    list_display = ("case", "arbitrator", "role", "round", "state", "signed_at")
    list_filter = ("state", "role")
    raw_id_fields = ("case", "arbitrator")


@admin.register(ReferenceFinding)
class ReferenceFindingAdmin(admin.ModelAdmin):
    list_display = (
        "ref_key",
        "revision",
        "case",
        "finding_type",
        "status",
        "decision",
        "is_current",
    )
    list_filter = ("status", "decision", "is_current")
    raw_id_fields = ("case", "supersedes", "arbitration_task", "decided_by")
    filter_horizontal = ("supporting_findings",)
