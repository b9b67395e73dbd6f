from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation_server.adjudication import views as adjudication_views
from annotation_server.api_urls import router
from annotation_server.imaging import pacs_views
from annotation_server.imaging import views as imaging_views
from annotation_server.imaging.ingest.api import ImportView, RevealView
from annotation_server.imaging.ingest.stow import studies_endpoint
from annotation_server.projects import assignment_views, qc_views
from annotation_server.projects.api.assignment import (
    AssignmentOverviewView,
    AssignmentRunView,
    ReassignView,
)
from annotation_server.reading import qualification_views
from annotation_server.reading import views as reading_views
from annotation_server.web import views

urlpatterns = [
    path("", views.home, name="home"),
    path("worklist/", views.worklist, name="worklist"),
    path("worklist/next/", reading_views.next_task, name="worklist-next"),
    path("read/<int:task_id>/", reading_views.workstation, name="workstation"),
    path("arbitrate/", adjudication_views.queue, name="arbitration-queue"),
    path("arbitrate/<int:task_id>/", adjudication_views.arbitrate, name="arbitrate"),
    path("healthz", views.healthz, name="healthz"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("projects/<slug:slug>/import/", imaging_views.import_page, name="import"),
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
        "projects/<slug:slug>/assignments/",
        assignment_views.assignments_page,
        name="assignments",
    ),
    path("projects/<slug:slug>/assignments/run/", assignment_views.run, name="assignments-run"),
    path(
        "projects/<slug:slug>/assignments/<int:task_id>/reassign/",
        assignment_views.reassign,
        name="assignments-reassign",
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
    path(
        "api/v1/projects/<slug:slug>/assignments/",
        AssignmentOverviewView.as_view(),
        name="api-assignments",
    ),
    path(
        "api/v1/projects/<slug:slug>/assignments/run/",
        AssignmentRunView.as_view(),
        name="api-assignments-run",
    ),
    path(
        "api/v1/projects/<slug:slug>/assignments/reassign/",
        ReassignView.as_view(),
        name="api-assignments-reassign",
    ),
    path("projects/<slug:slug>/pacs/", pacs_views.add_connection, name="pacs-add"),
    path("projects/<slug:slug>/pacs/<int:pk>/", pacs_views.search, name="pacs-search"),
    path("projects/<slug:slug>/pacs/<int:pk>/pull/", pacs_views.pull, name="pacs-pull"),
    path("api/v1/projects/<slug:slug>/imports/", ImportView.as_view(), name="api-import"),
    path(
        "api/v1/projects/<slug:slug>/identity/reveal/",
        RevealView.as_view(),
        name="api-identity-reveal",
    ),
    path("api/v1/", include(router.urls)),
    path("dicomweb/studies", studies_endpoint, name="dicomweb-studies"),
    path(
        "dicomweb/projects/<slug:slug>/studies", studies_endpoint, name="dicomweb-project-studies"
    ),
    path("dicomweb/", include("annotation_server.imaging.dicomweb.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]
