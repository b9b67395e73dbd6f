from django.urls import path

from annotation_server.outbox import views

urlpatterns = [
    path("projects/<slug:slug>/outbox/", views.outbox, name="outbox"),
]
