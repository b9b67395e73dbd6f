"""Pages and the REST endpoint of the agreement app."""

from django.urls import path

from annotation_server.agreement import assist_views, views
from annotation_server.agreement.api.views import AgreementReportView

urlpatterns = [
    path("projects/<slug:slug>/agreement/", views.agreement_page, name="agreement"),
    path("projects/<slug:slug>/agreement/compute/", views.compute, name="agreement-compute"),
    path(
        "projects/<slug:slug>/agreement/settings/",
        views.update_settings,
        name="agreement-settings",
    ),
    path("projects/<slug:slug>/agreement/report.json", views.report_json, name="agreement-json"),
    path("projects/<slug:slug>/agreement/report.csv", views.report_csv, name="agreement-csv"),
    path(
        "projects/<slug:slug>/agreement/figure.png", views.figure_png, name="agreement-figure-png"
    ),
    path(
        "projects/<slug:slug>/agreement/figure.svg", views.figure_svg, name="agreement-figure-svg"
    ),
    path("projects/<slug:slug>/assistance/", assist_views.assistance_page, name="assistance"),
    path("projects/<slug:slug>/assistance/run/", assist_views.run_model, name="assistance-run"),
    path(
        "api/v1/projects/<slug:slug>/agreement/",
        AgreementReportView.as_view(),
        name="api-agreement",
    ),
]
