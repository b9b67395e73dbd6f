"""DICOMweb (mounted at /dicomweb/): QIDO-RS and WADO-RS, also under
/dicomweb/projects/{slug}/ for one project. STOW-RS (POST .../studies) belongs to
the ingest pipeline: annotation_server/urls.py routes .../studies to its dispatcher
first, which hands GET to `SearchStudies` (project passed as `slug`)."""

from django.urls import include, path

from annotation_server.imaging.dicomweb import views

INSTANCE = "studies/<str:study>/series/<str:series>/instances/<str:instance>"

patterns = [
    path("studies", views.SearchStudies.as_view(), name="qido-studies"),
    path("series", views.SearchSeries.as_view(), name="qido-all-series"),
    path("instances", views.SearchInstances.as_view(), name="qido-all-instances"),
    path("studies/<str:study>", views.Retrieve.as_view(), name="wado-study"),
    path("studies/<str:study>/metadata", views.Metadata.as_view(), name="wado-study-metadata"),
    path("studies/<str:study>/series", views.SearchSeries.as_view(), name="qido-series"),
    path(
        "studies/<str:study>/instances",
        views.SearchInstances.as_view(),
        name="qido-study-instances",
    ),
    path("studies/<str:study>/series/<str:series>", views.Retrieve.as_view(), name="wado-series"),
    path(
        "studies/<str:study>/series/<str:series>/metadata",
        views.Metadata.as_view(),
        name="wado-series-metadata",
    ),
    path(
        "studies/<str:study>/series/<str:series>/instances",
        views.SearchInstances.as_view(),
        name="qido-instances",
    ),
    path(INSTANCE, views.Retrieve.as_view(), name="wado-instance"),
    path(f"{INSTANCE}/metadata", views.Metadata.as_view(), name="wado-instance-metadata"),
    path(f"{INSTANCE}/rendered", views.Rendered.as_view(), name="wado-instance-rendered"),
    path(f"{INSTANCE}/frames/<str:frames>", views.Frames.as_view(), name="wado-frames"),
    path(
        f"{INSTANCE}/frames/<str:frames>/rendered",
        views.Rendered.as_view(),
        name="wado-frame-rendered",
    ),
]

urlpatterns: list = [
    *patterns,
    path("projects/<slug:slug>/", include((patterns, "dicomweb"), namespace="project")),
]
