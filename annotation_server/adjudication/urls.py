"""Pages of the adjudication app: the arbitration queue and the arbitration view,
and the manager's console (reference standard of a case, forced settle,
arbitration reassignment) with its REST twin."""

from django.urls import path

from annotation_server.adjudication import console_views, views
from annotation_server.adjudication.api import console as api

urlpatterns = [
    path("arbitrate/", views.queue, name="arbitration-queue"),
    path("arbitrate/<int:task_id>/", views.arbitrate, name="arbitrate"),
    path(
        "projects/<slug:slug>/cases/<int:case_id>/reference/",
        console_views.reference_page,
        name="case-reference",
    ),
    path(
        "projects/<slug:slug>/cases/<int:case_id>/reference/reopen/",
        console_views.reopen,
        name="case-reference-reopen",
    ),
    path(
        "projects/<slug:slug>/cases/<int:case_id>/force-settle/",
        console_views.force_settle,
        name="case-force-settle",
    ),
    path(
        "projects/<slug:slug>/arbitration/<int:task_id>/reassign/",
        console_views.reassign_arbitration,
        name="arbitration-reassign",
    ),
    path(
        "api/v1/projects/<slug:slug>/cases/<int:case_id>/reference/",
        api.ReferenceView.as_view(),
        name="api-case-reference",
    ),
    path(
        "api/v1/projects/<slug:slug>/cases/<int:case_id>/reference/reopen/",
        api.ReferenceReopenView.as_view(),
        name="api-case-reference-reopen",
    ),
    path(
        "api/v1/projects/<slug:slug>/cases/<int:case_id>/force-settle/",
        api.ForceSettleView.as_view(),
        name="api-case-force-settle",
    ),
    path(
        "api/v1/projects/<slug:slug>/arbitration/reassign/",
        api.ReassignArbitrationView.as_view(),
        name="api-arbitration-reassign",
    ),
    path(
        "api/v1/projects/<slug:slug>/arbitration/stuck/",
        api.StuckArbitrationView.as_view(),
        name="api-arbitration-stuck",
    ),
]
