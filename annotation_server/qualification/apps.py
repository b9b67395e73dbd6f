from django.apps import AppConfig


class QualificationConfig(AppConfig):
    name = "annotation_server.qualification"
    label = "qualification"
