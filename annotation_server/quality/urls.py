"""Pages of the quality app: a project's QC page, its re-run, the distribution
CSV and the override of a failing case."""

from django.urls import path

from annotation_server.quality import views

urlpatterns = [
    path("projects/<slug:slug>/qc/", views.qc_page, name="qc"),
    path("projects/<slug:slug>/qc/rerun/", views.rerun, name="qc-rerun"),
    path(
        "projects/<slug:slug>/qc/rerun/<int:job_id>/",
        views.rerun_result,
        name="qc-rerun-result",
    ),
    path(
        "projects/<slug:slug>/qc/distribution.csv",
        views.distribution_csv,
        name="qc-distribution-csv",
    ),
    path(
        "projects/<slug:slug>/qc/<int:case_id>/override/",
        views.override,
        name="qc-override",
    ),
]
