"""The Celery application. Tasks live in each app's tasks.py (thin wrappers)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_server.settings")

app = Celery("refset")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
