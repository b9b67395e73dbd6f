from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "annotation_server.audit"
    label = "audit"
