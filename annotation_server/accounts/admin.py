from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from annotation_server.accounts.models import Site, UserProfile


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "site_type", "region")
    search_fields = ("code", "name")


class ProfileInline(admin.StackedInline):
    model = UserProfile
    can_delete = False


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class RefSetUserAdmin(UserAdmin):
    inlines = [ProfileInline]
    list_display = ("username", "email", "is_staff", "is_active")


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ("pseudonym", "user", "site", "title", "years_experience", "specialty")
    list_filter = ("site", "title")
    search_fields = ("pseudonym", "user__username")


@admin.register(AccessAttempt)
class AccessAttemptAdmin(admin.ModelAdmin):
    """Wrong-password records (django-axes), read-only: an account is unlocked with
    `manage.py unlock_account USERNAME --reason ...`, which is audited, never by
    deleting records here."""

    list_display = ("username", "failures_since_start", "attempt_time", "ip_address", "path_info")
    list_filter = ("attempt_time",)
    search_fields = ("username", "ip_address")
    date_hierarchy = "attempt_time"
    fields = list_display + ("user_agent", "http_accept")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
