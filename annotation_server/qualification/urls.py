"""Pages of the qualification app: the reader's qualification page and attempt
results, the manager's test settings, cases and reference."""

from django.urls import path

from annotation_server.qualification import views

urlpatterns = [
    path("projects/<slug:slug>/qualification/", views.my_qualification, name="qualification"),
    path(
        "projects/<slug:slug>/qualification/start/",
        views.start,
        name="qualification-start",
    ),
    path(
        "projects/<slug:slug>/qualification/attempts/<int:attempt_id>/",
        views.attempt_result,
        name="qualification-attempt",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/",
        views.manage,
        name="qualification-manage",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/settings/",
        views.save_settings,
        name="qualification-settings",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/cases/",
        views.edit_cases,
        name="qualification-cases",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/reference/",
        views.upload_reference,
        name="qualification-reference",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/copy-reference/",
        views.copy_reference,
        name="qualification-copy",
    ),
]
