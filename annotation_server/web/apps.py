from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "annotation_server.web"
    label = "web"

    def ready(self):
        from annotation_server.web import checks  # noqa: F401  (registers system checks)
