from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation_server.api_urls import router
from annotation_server.projects import qc_views
from annotation_server.reading import qualification_views
from annotation_server.web import views

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
    path("projects/<slug:slug>/qc/", qc_views.qc_page, name="qc"),
    path("projects/<slug:slug>/qc/rerun/", qc_views.rerun, name="qc-rerun"),
    path(
        "projects/<slug:slug>/qc/distribution.csv",
        qc_views.distribution_csv,
        name="qc-distribution-csv",
    ),
    path(
        "projects/<slug:slug>/qc/<int:case_id>/override/",
        qc_views.override,
        name="qc-override",
    ),
    path(
        "projects/<slug:slug>/qualification/",
        qualification_views.my_qualification,
        name="qualification",
    ),
    path(
        "projects/<slug:slug>/qualification/start/",
        qualification_views.start,
        name="qualification-start",
    ),
    path(
        "projects/<slug:slug>/qualification/attempts/<int:attempt_id>/",
        qualification_views.attempt_result,
        name="qualification-attempt",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/",
        qualification_views.manage,
        name="qualification-manage",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/settings/",
        qualification_views.save_settings,
        name="qualification-settings",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/cases/",
        qualification_views.edit_cases,
        name="qualification-cases",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/reference/",
        qualification_views.upload_reference,
        name="qualification-reference",
    ),
    path(
        "projects/<slug:slug>/qualification/manage/copy-reference/",
        qualification_views.copy_reference,
        name="qualification-copy",
    ),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
