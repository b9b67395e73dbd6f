"""Pages and endpoints of the reading app: the workstation, the next case, and
the manager's assignment page and API."""

from django.urls import path

from annotation_server.reading import (
    assignment_views,
    assist_views,
    console_views,
    import_views,
    reference_views,
    views,
)
from annotation_server.reading.api.assignment import (
    AssignmentOverviewView,
    AssignmentRunView,
    ReassignView,
)
from annotation_server.reading.api.assist_models import AssistModelsView, FinetuneView, PromoteView
from annotation_server.reading.api.console import ReturnView, WithdrawView
from annotation_server.reading.api.imports import ExportReadsView, ImportReadsView

urlpatterns = [
    path("worklist/next/", views.next_task, name="worklist-next"),
    path("read/<int:task_id>/", views.workstation, name="workstation"),
    path(
        "read/<int:task_id>/series/<int:pk>/",
        reference_views.reference_series,
        name="series-reference",
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
        "projects/<slug:slug>/cases/<int:case_id>/withdraw/",
        console_views.withdraw,
        name="case-withdraw",
    ),
    path(
        "projects/<slug:slug>/cases/<int:case_id>/return/",
        console_views.return_to_reading,
        name="case-return",
    ),
    path(
        "api/v1/projects/<slug:slug>/cases/<int:case_id>/withdraw/",
        WithdrawView.as_view(),
        name="api-case-withdraw",
    ),
    path(
        "api/v1/projects/<slug:slug>/cases/<int:case_id>/return/",
        ReturnView.as_view(),
        name="api-case-return",
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
    path(
        "projects/<slug:slug>/reads/import/",
        import_views.import_reads_page,
        name="reads-import",
    ),
    path(
        "projects/<slug:slug>/reads/export/",
        import_views.export_reads_download,
        name="reads-export",
    ),
    path(
        "api/v1/projects/<slug:slug>/reads/import/",
        ImportReadsView.as_view(),
        name="api-reads-import",
    ),
    path(
        "api/v1/projects/<slug:slug>/reads/export/",
        ExportReadsView.as_view(),
        name="api-reads-export",
    ),
    path(
        "projects/<slug:slug>/assist-models/", assist_views.assist_models_page, name="assist-models"
    ),
    path(
        "projects/<slug:slug>/assist-models/finetune/",
        assist_views.finetune_run,
        name="assist-models-finetune",
    ),
    path(
        "projects/<slug:slug>/assist-models/<int:version_id>/promote/",
        assist_views.promote,
        name="assist-models-promote",
    ),
    path(
        "api/v1/projects/<slug:slug>/assist-models/",
        AssistModelsView.as_view(),
        name="api-assist-models",
    ),
    path(
        "api/v1/projects/<slug:slug>/assist-models/finetune/",
        FinetuneView.as_view(),
        name="api-assist-models-finetune",
    ),
    path(
        "api/v1/projects/<slug:slug>/assist-models/<int:version_id>/promote/",
        PromoteView.as_view(),
        name="api-assist-models-promote",
    ),
]
