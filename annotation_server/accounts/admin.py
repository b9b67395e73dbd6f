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
