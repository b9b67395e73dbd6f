from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotation_server.api_urls import router
from annotation_server.projects import urls as project_urls
from annotation_server.web import overview, views

urlpatterns = [
    path("", views.home, name="home"),
    path("worklist/", views.worklist, name="worklist"),
    path("", include("annotation_server.reading.urls")),
    path("", include("annotation_server.adjudication.urls")),
    path("", include("annotation_server.imaging.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("", include("annotation_server.quality.urls")),
    path("", include("annotation_server.agreement.urls")),
    path("", include("annotation_server.qualification.urls")),
    path("", include("annotation_server.datasets.urls")),
    path("", include("annotation_server.outbox.urls")),
    # namespace "projects": the set-up console (projects app) and, after it, the
    # project overview (web: it aggregates reading, adjudication and quality)
    path("", include((project_urls.urlpatterns + overview.urlpatterns, "projects"))),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # the split view serves its start-up script as a file: no inline script (CSP)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]

handler500 = "annotation_server.errors.server_error"
