from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "annotation_server.imaging"
    label = "imaging"
