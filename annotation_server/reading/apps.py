from django.apps import AppConfig


class ReadingConfig(AppConfig):
    name = "annotation_server.reading"
    label = "reading"
