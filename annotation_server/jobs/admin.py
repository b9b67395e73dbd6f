from django.contrib import admin

from annotation_server.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "state", "progress", "project", "created_by", "created_at")
    list_filter = ("state", "kind")
    readonly_fields = ("created_at", "started_at", "finished_at", "log", "error", "result")
