"""Pages of dataset versions (namespace "datasets"), the export pages of
export_views.py and the evaluation pages of evaluation_views.py."""

from django.urls import path

from annotation_server.datasets import evaluation_views, export_views, views

app_name = "datasets"

urlpatterns = [
    path("projects/<slug:slug>/versions/", views.version_list, name="versions"),
    path("projects/<slug:slug>/versions/<str:version>/", views.version_detail, name="version"),
    path(
        "projects/<slug:slug>/versions/<str:version>/freeze/",
        views.version_freeze,
        name="version_freeze",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/redraw/",
        views.version_redraw,
        name="version_redraw",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/retire/",
        views.version_retire,
        name="version_retire",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/discard/",
        views.version_discard,
        name="version_discard",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/export/",
        export_views.export_start,
        name="export_start",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/exports/<int:job_id>/download/",
        export_views.export_download,
        name="export_download",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/evaluations/",
        evaluation_views.evaluation_list,
        name="evaluations",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/evaluations/<int:evaluation_id>/",
        evaluation_views.evaluation_detail,
        name="evaluation",
    ),
    path(
        "projects/<slug:slug>/versions/<str:version>/evaluations/<int:evaluation_id>/<str:fmt>/",
        evaluation_views.evaluation_download,
        name="evaluation_download",
    ),
]
