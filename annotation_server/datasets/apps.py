from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "annotation_server.datasets"
    label = "datasets"
