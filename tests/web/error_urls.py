"""The site's URLs plus one view that fails, for the 500-page test."""

from django.urls import path

from annotation_server.urls import urlpatterns as site_urlpatterns


def broken(request):
    raise RuntimeError("secret internal detail: connection string postgresql://x")


urlpatterns = [
    path("test-only/broken/", broken),
    path("api/v1/test-only/broken/", broken),
    *site_urlpatterns,
]
handler500 = "annotation_server.errors.server_error"
