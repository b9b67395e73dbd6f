"""Read-only views of the outbox for operators: destinations are kept, items
retried and cancelled on the project's outbox page (audited there)."""

from django.contrib import admin

from annotation_server.outbox.models import Destination, OutboxItem


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Destination)
class DestinationAdmin(_ReadOnly):
    list_display = ("name", "project", "kind", "connection", "inside_hospital", "marked_at")
    list_filter = ("kind", "inside_hospital", "project")


@admin.register(OutboxItem)
class OutboxItemAdmin(_ReadOnly):
    list_display = (
        "sop_instance_uid",
        "destination",
        "carries",
        "status",
        "attempts",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("status", "transport", "carries", "project")
    search_fields = ("sop_instance_uid", "series_uid")
