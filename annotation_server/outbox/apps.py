from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "annotation_server.outbox"
    label = "outbox"
