"""Pages and endpoints of the reading app: the workstation, the next case, and
the manager's assignment page and API."""

from django.urls import path

from annotation_server.reading import assignment_views, views
from annotation_server.reading.api.assignment import (
    AssignmentOverviewView,
    AssignmentRunView,
    ReassignView,
)

urlpatterns = [
    path("worklist/next/", views.next_task, name="worklist-next"),
    path("read/<int:task_id>/", views.workstation, name="workstation"),
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
]
