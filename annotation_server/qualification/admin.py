from django.contrib import admin

from annotation_server.qualification.models import QualificationAttempt, QualificationTest


@admin.register(QualificationTest)
class QualificationTestAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "min_sensitivity", "max_fp_per_case", "active")
    filter_horizontal = ("cases",)


@admin.register(QualificationAttempt)
class QualificationAttemptAdmin(admin.ModelAdmin):
    list_display = ("test", "reader", "number", "sensitivity", "fp_per_case", "passed")
    list_filter = ("passed",)
