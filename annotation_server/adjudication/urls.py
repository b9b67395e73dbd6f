"""Pages of the adjudication app: the arbitration queue and the arbitration view."""

from django.urls import path

from annotation_server.adjudication import views

urlpatterns = [
    path("arbitrate/", views.queue, name="arbitration-queue"),
    path("arbitrate/<int:task_id>/", views.arbitrate, name="arbitrate"),
]
