from django.contrib import admin

from annotation_server.quality.models import QcReport


@admin.register(QcReport)
class QcReportAdmin(admin.ModelAdmin):
    list_display = ("case", "status", "created_at")
    list_filter = ("status", "case__project")
    readonly_fields = ("case", "status", "profile", "results", "created_at")
