from django.apps import AppConfig


class QualityConfig(AppConfig):
    name = "annotation_server.quality"
    label = "quality"
