from django.apps import AppConfig


class AgreementConfig(AppConfig):
    name = "annotation_server.agreement"
    label = "agreement"
