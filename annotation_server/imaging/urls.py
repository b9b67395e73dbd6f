"""Pages and endpoints of the imaging app: the import page, PACS connections,
the import and identity-reveal API, STOW-RS and the rest of DICOMweb."""

from django.urls import include, path

from annotation_server.imaging import pacs_views, quarantine_views, viewer_views, views
from annotation_server.imaging.api.study_series import CaseSeriesView, SeriesThumbnailView
from annotation_server.imaging.ingest.api import ImportView, RevealView
from annotation_server.imaging.ingest.stow import studies_endpoint

urlpatterns = [
    path("projects/<slug:slug>/import/", views.import_page, name="import"),
    path(
        "projects/<slug:slug>/import/reports/<int:event_id>/",
        views.import_report,
        name="import-report",
    ),
    path(
        "projects/<slug:slug>/cases/<int:case_id>/images/",
        viewer_views.series_viewer,
        name="series-viewer",
    ),
    path(
        "projects/<slug:slug>/import/jobs/<int:job_id>/",
        views.import_job_report,
        name="import-job-report",
    ),
    path("projects/<slug:slug>/pacs/", pacs_views.add_connection, name="pacs-add"),
    path("projects/<slug:slug>/pacs/<int:pk>/", pacs_views.search, name="pacs-search"),
    path("projects/<slug:slug>/pacs/<int:pk>/pull/", pacs_views.pull, name="pacs-pull"),
    path("projects/<slug:slug>/quarantine/", quarantine_views.quarantine_list, name="quarantine"),
    path(
        "projects/<slug:slug>/quarantine/<int:item_id>/",
        quarantine_views.quarantine_review,
        name="quarantine-review",
    ),
    path(
        "projects/<slug:slug>/quarantine/<int:item_id>/image.png",
        quarantine_views.quarantine_image,
        name="quarantine-image",
    ),
    path("api/v1/projects/<slug:slug>/imports/", ImportView.as_view(), name="api-import"),
    path("api/v1/cases/<int:case_id>/series/", CaseSeriesView.as_view(), name="api-case-series"),
    path(
        "api/v1/series/<int:pk>/thumbnail.png",
        SeriesThumbnailView.as_view(),
        name="series-thumbnail",
    ),
    path(
        "api/v1/projects/<slug:slug>/quarantine/",
        quarantine_views.QuarantineListView.as_view(),
        name="api-quarantine",
    ),
    path(
        "api/v1/projects/<slug:slug>/quarantine/<int:item_id>/",
        quarantine_views.QuarantineDetailView.as_view(),
        name="api-quarantine-detail",
    ),
    path(
        "api/v1/projects/<slug:slug>/quarantine/<int:item_id>/preview/",
        quarantine_views.QuarantinePreviewView.as_view(),
        name="api-quarantine-preview",
    ),
    path(
        "api/v1/projects/<slug:slug>/quarantine/<int:item_id>/redact/",
        quarantine_views.QuarantineRedactView.as_view(),
        name="api-quarantine-redact",
    ),
    path(
        "api/v1/projects/<slug:slug>/quarantine/<int:item_id>/release/",
        quarantine_views.QuarantineReleaseView.as_view(),
        name="api-quarantine-release",
    ),
    path(
        "api/v1/projects/<slug:slug>/quarantine/<int:item_id>/reject/",
        quarantine_views.QuarantineRejectView.as_view(),
        name="api-quarantine-reject",
    ),
    path(
        "api/v1/projects/<slug:slug>/identity/reveal/",
        RevealView.as_view(),
        name="api-identity-reveal",
    ),
    path("dicomweb/studies", studies_endpoint, name="dicomweb-studies"),
    path(
        "dicomweb/projects/<slug:slug>/studies", studies_endpoint, name="dicomweb-project-studies"
    ),
    path("dicomweb/", include("annotation_server.imaging.dicomweb.urls")),
]
