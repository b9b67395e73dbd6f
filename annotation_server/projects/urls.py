"""Pages of the projects app (namespace "projects"): the manager's console for
setting a project up, its members, and the invitation page."""

from django.urls import path

from annotation_server.projects import views
from annotation_server.projects.api.console import (
    MemberDeactivateView,
    MemberDetailView,
    MemberInvitationView,
    MemberListView,
    QcProfileView,
    SchemaView,
)

app_name = "projects"

urlpatterns = [
    path("projects/", views.project_list, name="project_list"),
    path("projects/new/", views.project_create, name="project_create"),
    path("projects/sites/", views.sites, name="sites"),
    path("projects/<slug:slug>/settings/", views.project_edit, name="project_edit"),
    path("projects/<slug:slug>/schema/", views.project_schema, name="project_schema"),
    path("projects/<slug:slug>/qc-profile/", views.project_qc_profile, name="project_qc_profile"),
    path("projects/<slug:slug>/members/", views.project_members, name="project_members"),
    path(
        "projects/<slug:slug>/members/<int:user_id>/",
        views.project_member,
        name="project_member",
    ),
    path(
        "projects/<slug:slug>/members/<int:user_id>/deactivate/",
        views.project_member_deactivate,
        name="project_member_deactivate",
    ),
    path(
        "projects/<slug:slug>/members/<int:user_id>/invitation/",
        views.project_member_invitation,
        name="project_member_invitation",
    ),
    path("invitations/<str:token>/", views.accept_invitation, name="accept_invitation"),
    # REST (the router's /api/v1/projects/ does list, detail, create and update)
    path("api/v1/projects/<slug:slug>/schema/", SchemaView.as_view(), name="api_schema"),
    path("api/v1/projects/<slug:slug>/qc-profile/", QcProfileView.as_view(), name="api_qc_profile"),
    path("api/v1/projects/<slug:slug>/members/", MemberListView.as_view(), name="api_members"),
    path(
        "api/v1/projects/<slug:slug>/members/<int:user_id>/",
        MemberDetailView.as_view(),
        name="api_member",
    ),
    path(
        "api/v1/projects/<slug:slug>/members/<int:user_id>/deactivate/",
        MemberDeactivateView.as_view(),
        name="api_member_deactivate",
    ),
    path(
        "api/v1/projects/<slug:slug>/members/<int:user_id>/invitation/",
        MemberInvitationView.as_view(),
        name="api_member_invitation",
    ),
]
