from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "annotation_server.jobs"
    label = "jobs"
