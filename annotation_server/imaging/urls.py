"""Pages and endpoints of the imaging app: the import page, PACS connections,
the import and identity-reveal API, STOW-RS and the rest of DICOMweb."""

from django.urls import include, path

from annotation_server.imaging import pacs_views, views
from annotation_server.imaging.ingest.api import ImportView, RevealView
from annotation_server.imaging.ingest.stow import studies_endpoint

urlpatterns = [
    path("projects/<slug:slug>/import/", views.import_page, name="import"),
    path("projects/<slug:slug>/pacs/", pacs_views.add_connection, name="pacs-add"),
    path("projects/<slug:slug>/pacs/<int:pk>/", pacs_views.search, name="pacs-search"),
    path("projects/<slug:slug>/pacs/<int:pk>/pull/", pacs_views.pull, name="pacs-pull"),
    path("api/v1/projects/<slug:slug>/imports/", ImportView.as_view(), name="api-import"),
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
