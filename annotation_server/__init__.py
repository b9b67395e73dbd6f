"""RefSet's Django project: settings, URLs, the Celery app and the domain apps."""

from annotation_server.celery import app as celery_app

__all__ = ["celery_app"]
__version__ = "0.1.0"
