from django.apps import AppConfig


class AdjudicationConfig(AppConfig):
    name = "annotation_server.adjudication"
    label = "adjudication"
